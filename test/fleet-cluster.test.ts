/**
 * Three `strata fleet worker` processes share one cluster database (a PostgreSQL schema); a fleet
 * of 12 SQLite tenants and one PostgreSQL schema is submitted to them (`--cluster`), migrated, then
 * backfilled while one worker is SIGKILLed midway. Every target still finishes exactly once: one
 * workflow per target and operation, each with its one result; each job's counters equal one
 * pass over its table (no batch counted twice, though the dead worker's in-flight batches ran
 * again elsewhere); every migration recorded once with the plan's checksum.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Compile } from "@strata/core"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fleetPlan, onDatabase, seedMessages, targetState, writePlanFile } from "./fixtures/fleetTenants.js"
import { createPgTestSchema, pgTestUrl } from "./support/databases.js"
import { resultOf, run, start, targetEvents } from "./support/fleetProcesses.js"

// Small: every activity is a few round trips to the cluster database, which other tests share.
const TENANTS = 12
const ROWS = 100
const REJECTS = ROWS / 50

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000, pollMs = 200) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, pollMs))
  }
}

describe("fleet workers on a shared cluster database", () => {
  it("finish every target exactly once when one worker is SIGKILLed mid-run", async () => {
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-fleet-cluster-"))
    const cluster = await createPgTestSchema()
    const tenantSchema = await createPgTestSchema()
    const workers: Array<ReturnType<typeof start>> = []
    try {
      const pg = pgTestUrl()
      const clusterUrl = `${pg}#${cluster.schema}`
      Fs.mkdirSync(Path.join(root, "tenants"))
      for (let i = 0; i < TENANTS; i++) {
        await onDatabase(Path.join(root, "tenants", `t${String(i).padStart(2, "0")}.db`), seedMessages(ROWS, i))
      }
      await onDatabase(tenantSchema.url, seedMessages(ROWS, 99))
      Fs.writeFileSync(Path.join(root, "targets.txt"), `tenants/*.db\n${pg}#${tenantSchema.schema}\n`)
      writePlanFile(Path.join(root, "plan.json"))
      const total = TENANTS + 1

      for (let i = 0; i < 3; i++) {
        const port = await freePort()
        workers.push(start(["fleet", "worker", "--cluster", clusterUrl, "--plan", "plan.json", "--port", String(port), "--json", "--log-level", "info"], { cwd: root }))
      }
      const onCluster = <A>(effect: Effect.Effect<A, unknown, SqlClient.SqlClient>) => onDatabase(cluster.url, effect)
      // A worker that died starting (its port taken meanwhile, say) is named with its last words.
      const workerState = () =>
        workers.map((w, i) => `worker ${i}: ${w.child.exitCode === null && w.child.signalCode === null ? "running" : `exited ${w.child.exitCode ?? w.child.signalCode}`}, stderr ${JSON.stringify(w.stderrSoFar().slice(-400))}`).join("; ")
      await until("three workers", () =>
        onCluster(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*) AS n FROM cluster_runners`)).then(
          (rows) => Number(rows[0]?.n) === 3,
          () => false
        )).catch((error: Error) => Promise.reject(new Error(`${error.message} (${workerState()})`)))

      const submit = (operation: string, extra: ReadonlyArray<string> = [], killWhen?: (lines: ReadonlyArray<Record<string, unknown>>) => boolean) =>
        run(["fleet", operation, "--targets", "targets.txt", "--plan", "plan.json", "--cluster", clusterUrl, "--json", ...extra], {
          cwd: root,
          ...(killWhen === undefined ? {} : { killWhen })
        })

      const migrated = await submit("migrate")
      expect(migrated.code, migrated.stderr).toBe(0)
      expect(resultOf(migrated.lines)!["done"]).toBe(total)

      // Kill a worker once a few targets have finished their backfill, one that holds a target not
      // finished yet (its log since the backfill began names it); the submitter goes on. Killed at any
      // other moment (between two targets, or a worker the cluster gave no target) it leaves nothing to move.
      const targets = targetEvents(migrated.lines).map((e) => String(e["target"]))
      const logBefore = workers.map((w) => w.stderrSoFar().length)
      const logSinceBackfill = (i: number) => workers[i]!.stderrSoFar().slice(logBefore[i])
      const backfill = start(["fleet", "backfill", "--targets", "targets.txt", "--plan", "plan.json", "--cluster", clusterUrl, "--json", "--batch-size", "10", "--pause-ms", "15"], { cwd: root })
      const finished = () => new Set(targetEvents(backfill.lines).map((e) => e["target"]))
      const holdsUnfinished = (i: number) => targets.some((t) => logSinceBackfill(i).includes(t) && !finished().has(t))
      let victimIndex = -1
      await until("three backfilled targets and a worker holding another", async () => {
        victimIndex = finished().size >= 3 ? workers.findIndex((_, i) => holdsUnfinished(i)) : -1
        return victimIndex >= 0
      }, 120_000, 5)
      const finishedAtKill = finished()
      const victim = workers[victimIndex]!
      victim.child.kill("SIGKILL")
      const backfilled = await backfill.done
      expect(backfilled.code, backfilled.stderr).toBe(0)
      const result = resultOf(backfilled.lines)!
      expect([result["done"], result["failed"], result["skipped"]]).toEqual([total, 0, 0])
      expect(finishedAtKill.size).toBeLessThan(total)
      // The dead worker had targets in hand that others finished.
      const victimLog = (await victim.done).stderr.slice(logBefore[victimIndex])
      const moved = targetEvents(backfilled.lines).filter((e) => !finishedAtKill.has(e["target"]) && victimLog.includes(String(e["target"])))
      expect(moved.length).toBeGreaterThan(0)
      for (const event of targetEvents(backfilled.lines)) {
        expect([event["state"], event["rows"], event["rejects"], event["jobsDone"]], String(event["target"])).toEqual(["done", ROWS - REJECTS, REJECTS, 1])
      }

      // Exactly one workflow per target and operation, each answered once.
      const runs = await onCluster(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ entity_id: string; processed: boolean; replies: number }>`
          SELECT m.entity_id, m.processed, (SELECT count(*) FROM cluster_replies r WHERE r.request_id = m.request_id AND r.kind = 0) AS replies
          FROM cluster_messages m WHERE m.tag = 'run'`))
      expect(runs.length).toBe(total * 2)
      expect(new Set(runs.map((r) => r.entity_id)).size).toBe(total * 2)
      expect(runs.every((r) => r.processed && Number(r.replies) === 1)).toBe(true)
      const ledger = await onCluster(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ state: string; failures: number; n: number }>`SELECT state, failures, count(*) AS n FROM strata_fleet_targets GROUP BY state, failures`))
      expect(ledger.map((r) => [r.state, Number(r.failures), Number(r.n)])).toEqual([["done", 0, total * 2]])

      const checksums = fleetPlan.migrations.map((m) => `${m.id}:${Compile.checksum(m)}`)
      const recorded = await onCluster(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ n: number }>`SELECT count(*) AS n FROM strata_fleet_migrations`))
      expect(Number(recorded[0]!.n)).toBe(total * 2)
      for (let i = 0; i < TENANTS; i++) {
        const state = await onDatabase(Path.join(root, "tenants", `t${String(i).padStart(2, "0")}.db`), targetState)
        expect(state.migrations).toEqual(checksums)
        expect(state.jobs, `t${i}`).toEqual([`messages.created_at_ms:${ROWS}/${ROWS - REJECTS}/${REJECTS}/done`])
        expect(state.rejects.length).toBe(REJECTS)
        expect(state.messages.split(",").filter((m) => m.endsWith(":null")).length).toBe(REJECTS)
      }
      const pgState = await onDatabase(tenantSchema.url, targetState)
      expect([pgState.migrations, pgState.jobs]).toEqual([checksums, [`messages.created_at_ms:${ROWS}/${ROWS - REJECTS}/${REJECTS}/done`]])
    } finally {
      for (const w of workers) w.child.kill("SIGTERM")
      await Promise.all(workers.map((w) => w.done))
      await cluster.drop()
      await tenantSchema.drop()
      Fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
