/**
 * WriteBehind under SIGTERM: a child process (the built packages) appends through WriteBehind as
 * fast as it can from several fibers and prints each acknowledged message; the test SIGTERMs it
 * mid-load, starts it again, SIGTERMs it again, and then checks the database: every acknowledged
 * message is there exactly once with the seq it was acknowledged with, each session's seqs are
 * 1..n without gaps or repeats across both runs, and each writer's messages are in its order.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { ChatPlan, ChatStore } from "@strata/chat"
import { Database, Migrator } from "@strata/sql"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { assertBuildIsFresh } from "./fixtures/builtPackages.js"
import { pgTestUrlWithSchema, tempSqliteFile } from "./support/databases.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
const childScript = Path.join(here, "fixtures", "writebehind-child.mjs")

const builtSources = ["chat/src/WriteBehind.ts", "chat/src/ChatStore.ts", "chat/src/internal/writeBuffer.ts", "chat/src/internal/chatRows.ts", "sql/src/Database.ts"]

interface Ack {
  readonly sessionId: string
  readonly seq: number
  readonly id: string
  readonly content: string
}

interface Run {
  readonly acks: ReadonlyArray<Ack>
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
  readonly acksAtSignal: number
  /** Messages still buffered when the writers had stopped: what the drain on close had to write. */
  readonly pendingAtClose: number
}

/** Runs the child until it has acknowledged `acksBeforeSigterm` appends, then SIGTERMs it and waits for its exit. */
const runChild = (url: string, sessions: ReadonlyArray<string>, label: string, acksBeforeSigterm: number) =>
  Effect.async<Run, Error>((resume) => {
    const child = spawn(process.execPath, [childScript, url, sessions.join(","), label, "8"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    const acks: Array<Ack> = []
    let partial = ""
    let stderr = ""
    let acksAtSignal = -1
    let pendingAtClose = -1
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 120_000)
    child.stdout.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        const [kind, sessionId, seq, id, content] = line.split(" ")
        if (kind === "closing") pendingAtClose = Number(sessionId)
        if (kind !== "ack") continue
        acks.push({ sessionId: sessionId!, seq: Number(seq), id: id!, content: content! })
      }
      if (acksAtSignal < 0 && acks.length >= acksBeforeSigterm) {
        acksAtSignal = acks.length
        child.kill("SIGTERM")
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (code, signal) => {
      clearTimeout(watchdog)
      resume(Effect.succeed({ acks, code, signal, stderr, acksAtSignal, pendingAtClose }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const sessions = ["s-a", "s-b", "s-c"]

const scenario = (url: string) =>
  Effect.gen(function*() {
    assertBuildIsFresh(builtSources)
    const database = Database.layer({ url })
    yield* Effect.gen(function*() {
      yield* Effect.flatMap(Migrator.make(ChatPlan.plan), (m) => m.run())
      const store = yield* ChatStore.ChatStore
      for (const id of sessions) yield* store.createSession({ id })
    }).pipe(Effect.provide(ChatStore.layer.pipe(Layer.provideMerge(database))))

    const first = yield* runChild(url, sessions, "r1", 4000)
    const second = yield* runChild(url, sessions, "r2", 3000)
    for (const run of [first, second]) {
      expect(run.stderr).toBe("")
      expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null })
      // Under load: the child kept acknowledging between the signal and its exit is allowed, but it was busy when signalled.
      expect(run.acksAtSignal).toBeGreaterThanOrEqual(3000)
      expect(run.pendingAtClose).toBeGreaterThanOrEqual(0)
    }
    // The drain on close had messages to write (they are checked below like every other).
    expect(first.pendingAtClose + second.pendingAtClose).toBeGreaterThan(0)
    const acks = [...first.acks, ...second.acks]

    const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ id: string; session_id: string; seq: number; content: string }>`SELECT id, session_id, seq, content
        FROM messages ORDER BY session_id, seq`).pipe(Effect.provide(database))
    const byId = new Map(rows.map((row) => [row.id, row]))
    // Every acknowledged message is stored, with the session, seq and content it was acknowledged with.
    for (const ack of acks) {
      expect(byId.get(ack.id)).toEqual({ id: ack.id, session_id: ack.sessionId, seq: ack.seq, content: ack.content })
    }
    // Exactly once: no content twice (ids are the primary key).
    expect(new Set(rows.map((row) => row.content)).size).toBe(rows.length)
    // Per session: seqs 1..n, no gaps or repeats, across the restart.
    for (const session of sessions) {
      const seqs = rows.filter((row) => row.session_id === session).map((row) => row.seq)
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
    }
    // Per writer: its messages are stored in the order it appended them.
    for (const session of sessions) {
      const inSession = rows.filter((row) => row.session_id === session)
      const lastI = new Map<string, number>()
      for (const row of inSession) {
        const [label, writer, i] = row.content.split(":")
        const key = `${label}:${writer}`
        expect(Number(i)).toBeGreaterThan(lastI.get(key) ?? -1)
        lastI.set(key, Number(i))
      }
    }
    // The second run continued after the first: all of run 1 precedes run 2 in every session.
    for (const session of sessions) {
      const labels = rows.filter((row) => row.session_id === session).map((row) => row.content.split(":")[0])
      expect(labels.indexOf("r2")).toBe(labels.lastIndexOf("r1") + 1)
    }
    expect(rows.length).toBeGreaterThanOrEqual(acks.length)
  })

describe("WriteBehind survives SIGTERM under load", () => {
  it.scopedLive("SQLite", () => Effect.flatMap(tempSqliteFile("writebehind.db"), scenario), 180_000)

  it.scopedLive(
    "PostgreSQL",
    () => Effect.flatMap(pgTestUrlWithSchema(), ({ url }) => scenario(url)),
    180_000
  )
})
