/**
 * The SQLite write-back on a thread of its own (`lazyWorker.js`, over `node:worker_threads`), with its
 * own better-sqlite3 connection to the app's file. better-sqlite3 is synchronous: on the readers' thread
 * every UPDATE (and every wait for another writer's lock) stops every fiber of the process; on its own
 * thread it costs readers nothing but the hand-off, and WAL lets one writer work beside the readers.
 *
 * The statements are still built on the readers' side (`writeStatement`, the one conditional UPDATE);
 * the worker only runs them. Where the worker cannot work, the write-back stays on the app's client
 * (`clientWriter`): an in-memory or temporary database (no other connection can see it), a database not
 * in WAL mode, a table in a database the worker cannot attach, a driver it cannot load, a file it
 * cannot open; and, from then on, when the thread fails.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type { Identifier } from "@strata/core"
import { Identifier as Identifiers } from "@strata/core"
import { Deferred, Effect, Either, Exit } from "effect"
import type { Scope } from "effect"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"
import { failureText } from "../SqlErrors.js"
import type { WriteStatement, Writer, Written } from "./lazyWriteBack.js"

/** Where the write-back runs: its own thread (`threadId`), or the app's client on the readers' thread. */
export type WriteBackPath =
  | { readonly _tag: "Worker"; readonly threadId: number }
  | { readonly _tag: "Client"; readonly reason: string }

/** What the worker needs to open the app's database: its files and the driver to open them with. */
export interface WorkerSetup {
  readonly driver: string
  readonly filename: string
  readonly attached: ReadonlyArray<{ readonly name: string; readonly file: string }>
  readonly busyTimeoutMs: number
  /** `[id + 1, written, microseconds]` of the last statement that succeeded, written by the worker (see `poll`). */
  readonly done: SharedArrayBuffer
}

/**
 * The driver the app's connection uses: the better-sqlite3 of @effect/sql-sqlite-node, else one the
 * app installed beside @strata/sql. Loaded only in the worker.
 */
const resolveDriver = (): Either.Either<string, string> => {
  const here = createRequire(import.meta.url)
  const failures: Array<string> = []
  const attempts: ReadonlyArray<() => string> = [
    () => createRequire(here.resolve("@effect/sql-sqlite-node/package.json")).resolve("better-sqlite3"),
    () => here.resolve("better-sqlite3")
  ]
  for (const attempt of attempts) {
    try {
      return Either.right(attempt())
    } catch (error) {
      failures.push(failureText(error))
    }
  }
  return Either.left(`better-sqlite3 cannot be loaded (${failures.join("; ")})`)
}

/**
 * What a worker needs to write back the rows of `tables`, or why it cannot: from the app's connection's
 * `PRAGMA database_list` (the main file, and attached files the plan's `schema.table` names may refer to).
 */
export const workerSetup = (
  sql: SqlClient.SqlClient,
  tables: ReadonlyArray<Identifier.TableName>,
  busyTimeoutMs: number
): Effect.Effect<Either.Either<WorkerSetup, string>> =>
  Effect.gen(function*() {
    const listed = yield* Effect.either(
      sql.withoutTransforms().unsafe<{ readonly name: string; readonly file: string }>("PRAGMA database_list").unprepared
    )
    if (Either.isLeft(listed)) return Either.left(`the database's files cannot be listed: ${failureText(listed.left)}`)
    const main = listed.right.find((database) => database.name === "main")
    if (main === undefined || main.file === "") {
      return Either.left("the database is in memory (or temporary), so no other connection can open it")
    }
    // The attached databases the plan's `schema.table` names live in; the worker attaches those.
    const attached: Array<{ readonly name: string; readonly file: string }> = []
    for (const table of tables) {
      const schema = Identifiers.tableParts(table).schema?.toLowerCase()
      if (schema === undefined || schema === "main" || attached.some((database) => database.name.toLowerCase() === schema)) continue
      const database = listed.right.find((database) => database.name.toLowerCase() === schema && database.name !== "temp")
      if (database === undefined || database.file === "") {
        return Either.left(`table ${table} is in database ${schema}, which another connection cannot attach`)
      }
      attached.push(database)
    }
    return Either.map(resolveDriver(), (driver) => ({
      driver,
      filename: main.file,
      attached: attached.map(({ file, name }) => ({ file, name })),
      busyTimeoutMs,
      done: new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT)
    }))
  })

type Reply =
  | { readonly type: "ready"; readonly threadId: number }
  | { readonly type: "unavailable"; readonly reason: string }
  | { readonly id: number; readonly written: number; readonly ms: number; readonly type?: undefined }
  | { readonly id: number; readonly error: { readonly message: string; readonly code: unknown }; readonly type?: undefined }

// The same error the app's client would give for the statement, so failures read alike on either path.
const statementFailed = (error: { readonly message: string; readonly code: unknown }) =>
  new SqlError({
    cause: Object.assign(new Error(error.message), typeof error.code === "string" ? { code: error.code } : {}),
    message: "Failed to execute statement"
  })

/**
 * A writer on a worker thread, started now (the layer does not wait for it): a statement sent before
 * it is ready waits for it. Until it is ready, and whenever a request is in flight or it is closing,
 * the worker keeps the process alive; idle, it does not. Closed with the scope.
 *
 * Where the worker cannot open the database, or its thread fails, statements go to `fallback` (the
 * app's client); `fellBack` is told why, once. A statement in flight when the thread fails is counted
 * as failed by the caller (its rows stay pending).
 *
 * The worker's answer arrives as a message, which is heard only when the event loop turns; a tight loop
 * of SQLite reads lets it turn once every 2,048 scheduler turns. `poll`, called by the readers between
 * two reads, hears a success from shared memory at once (a failure still waits for its message).
 */
export const workerWriter = (
  setup: WorkerSetup,
  fallback: Writer,
  fellBack: (reason: string) => Effect.Effect<void>
): Effect.Effect<
  { readonly writer: Writer; readonly path: Effect.Effect<WriteBackPath>; readonly poll: () => void },
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const settled = yield* Deferred.make<void>()
    let path: WriteBackPath | undefined
    let announced = false
    let closing = false
    const inFlight = new Map<number, (result: Either.Either<Written, SqlError>) => void>()
    let nextId = 0

    const spawned = Either.try(() => new Worker(new URL("./lazyWorker.js", import.meta.url), { workerData: setup }))
    if (Either.isLeft(spawned)) {
      path = { _tag: "Client", reason: `the write-back thread cannot start: ${failureText(spawned.left)}` }
      return { writer: fallbackWriter(), path: Effect.succeed(path), poll: () => {} }
    }
    const worker = spawned.right
    const done = new Int32Array(setup.done)
    // Referenced while starting; afterwards only while someone waits for it (see `send` and the finalizer).
    const release = () => {
      if (inFlight.size === 0 && !closing) worker.unref()
    }
    const stop = (reason: string) => {
      if (path === undefined || path._tag === "Worker") path = { _tag: "Client", reason }
      Deferred.unsafeDone(settled, Exit.void)
      const waiting = [...inFlight.values()]
      inFlight.clear()
      for (const resume of waiting) resume(Either.left(statementFailed({ message: reason, code: undefined })))
    }
    const answer = (id: number, result: Either.Either<Written, SqlError>) => {
      const resume = inFlight.get(id)
      if (resume === undefined) return
      inFlight.delete(id)
      release()
      resume(result)
    }
    worker.on("message", (reply: Reply) => {
      if (reply.type === "ready") {
        path = { _tag: "Worker", threadId: reply.threadId }
        Deferred.unsafeDone(settled, Exit.void)
        return release()
      }
      if (reply.type === "unavailable") return stop(`the write-back's own connection cannot use the database: ${reply.reason}`)
      answer(reply.id, "error" in reply ? Either.left(statementFailed(reply.error)) : Either.right({ written: reply.written, ms: reply.ms }))
    })
    // Statements go one at a time (the caller holds its write lock), so the last success names the one in flight.
    const poll = () => {
      if (inFlight.size === 0) return
      const id = Atomics.load(done, 0) - 1
      if (inFlight.has(id)) answer(id, Either.right({ written: Atomics.load(done, 1), ms: Atomics.load(done, 2) / 1000 }))
    }
    worker.on("error", (error) => stop(`the write-back thread failed: ${failureText(error)}`))
    worker.on("exit", (code) => stop(closing ? "the write-back thread was closed" : `the write-back thread exited (code ${code})`))

    function fallbackWriter(): Writer {
      return {
        run: (statement) =>
          announced || path === undefined || path._tag !== "Client"
            ? fallback.run(statement)
            : Effect.zipRight(Effect.suspend(() => {
              announced = true
              return fellBack(path!._tag === "Client" ? path!.reason : "")
            }), fallback.run(statement))
      }
    }
    const onClient = fallbackWriter()

    const send = (statement: WriteStatement): Effect.Effect<Written, unknown> =>
      Effect.async<Written, SqlError>((resume) => {
        const id = nextId++
        inFlight.set(id, (result) => resume(Either.isRight(result) ? Effect.succeed(result.right) : Effect.fail(result.left)))
        worker.ref()
        worker.postMessage({ type: "run", id, sql: statement.sql, params: statement.params })
      })

    const writer: Writer = {
      run: (statement) =>
        Effect.zipRight(
          Deferred.await(settled),
          Effect.suspend(() => (path?._tag === "Worker" ? send(statement) : onClient.run(statement)))
        )
    }

    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        if (path?._tag === "Client") return resume(Effect.void)
        closing = true
        worker.ref()
        worker.once("exit", () => resume(Effect.void))
        worker.postMessage({ type: "close" })
      })
    )

    return {
      writer,
      path: Effect.zipRight(Deferred.await(settled), Effect.sync(() => path!)),
      poll
    }
  })
