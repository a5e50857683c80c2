/**
 * Shows a backfill's progress events: on a terminal, one live bar per job redrawn in place
 * (percent, rows, rows/s, ETA); otherwise (a pipe, a log file, CI) a line at most every few seconds
 * while a job runs, and one when it ends; with `--json`, every event as a JSON line.
 *
 * @since 0.1.0
 */
import { Progress } from "@strata/core"
import type { BackfillRunner } from "@strata/sql"
import { Clock, Effect, Ref } from "effect"
import * as IndexBuild from "./IndexBuild.js"
import * as Output from "./Output.js"
import { count } from "./Table.js"
import * as Terminal from "./Terminal.js"

/**
 * One progress report of a job (a backfill's `ProgressEvent` is one).
 *
 * @since 0.1.0
 */
export type Update = Pick<
  BackfillRunner.ProgressEvent,
  "job" | "phase" | "dryRun" | "processed" | "updated" | "rejected" | "total" | "percent" | "rowsPerSecond" | "etaMs" | "done" | "indexes"
>

/**
 * How events are shown.
 *
 * @since 0.1.0
 */
export type Mode = "bar" | "lines" | "json"

/**
 * The mode for the current stdout: JSON lines with `--json`, a live bar on a terminal, lines otherwise.
 *
 * @since 0.1.0
 */
export const modeFor = (json: boolean): Mode => (json ? "json" : Terminal.stdoutIsTty() ? "bar" : "lines")

/**
 * The gap between two progress lines of one job when stdout is not a terminal.
 *
 * @since 0.1.0
 */
export const lineIntervalMs = 2000

// A terminal line redrawn more often than this only flickers.
const redrawIntervalMs = 100

const barWidth = 24

const bar = (percent: number): string => {
  const filled = Math.min(barWidth, Math.floor((percent / 100) * barWidth))
  return `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]`
}

/**
 * The words of one progress line: counts, percent, rate, ETA, rejects.
 *
 * @since 0.1.0
 */
export const describe = (event: Update, updatedWord = "updated"): string => {
  const parts = [
    `${count(event.processed)}/${count(event.total)} rows`,
    Progress.formatPercent(event.percent)
  ]
  if (event.done) {
    parts.push(`${count(event.updated)} ${event.dryRun ? `would be ${updatedWord}` : updatedWord}`)
  } else {
    parts.push(Progress.formatRate(event.rowsPerSecond))
    parts.push(`ETA ${event.etaMs === undefined ? "?" : Progress.formatDuration(event.etaMs)}`)
  }
  if (event.rejected > 0) parts.push(`${count(event.rejected)} rejected`)
  return parts.join("  ")
}

const phaseWord = (event: Update): string => {
  switch (event.phase) {
    case "started":
      return "started"
    case "batch":
      return "running"
    case "completed":
      return event.dryRun ? "dry run" : "done"
    case "skipped":
      return "already done"
    case "indexed":
      return "indexed"
  }
}

/**
 * A sink for one run's events; `close` ends a bar left open (after an interrupt or failure).
 *
 * @since 0.1.0
 */
export interface View {
  readonly show: (event: Update) => Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

/**
 * A view in `mode`; `nameWidth` aligns job names.
 *
 * @since 0.1.0
 */
export const make = (
  mode: Mode,
  nameWidth: number,
  options: { readonly updatedWord?: string; readonly indent?: string } = {}
): Effect.Effect<View> =>
  Effect.gen(function*() {
    // The job whose bar is open (drawn without a newline), and when each job last printed.
    const openBar = yield* Ref.make<string | undefined>(undefined)
    const lastShown = yield* Ref.make(new Map<string, number>())
    const updatedWord = options.updatedWord ?? "updated"
    const name = (job: string) => `${options.indent ?? ""}${job.padEnd(nameWidth)}`

    const due = (event: Update, interval: number) =>
      Effect.gen(function*() {
        if (event.phase !== "batch") return true
        const now = yield* Clock.currentTimeMillis
        const last = (yield* Ref.get(lastShown)).get(event.job)
        if (last !== undefined && now - last < interval) return false
        yield* Ref.update(lastShown, (m) => new Map(m).set(event.job, now))
        return true
      })

    // After the job's last line: one line per index built for it.
    const indexLines = (event: Update) =>
      Effect.forEach(event.indexes ?? [], (index) =>
        Output.line(`${name(event.job)}  ${"indexed".padEnd(12)}  ${index.name} built: ${IndexBuild.buildNote(index)}`), { discard: true })

    const show = (event: Update): Effect.Effect<void> => {
      if (event.phase === "indexed" && mode !== "json") return indexLines(event)
      switch (mode) {
        case "json":
          return Output.progress(event)
        case "lines":
          // A job that starts and ends between two lines needs only its end line.
          if (event.phase === "started") return Effect.void
          return Effect.flatMap(due(event, lineIntervalMs), (print) =>
            print ? Output.line(`${name(event.job)}  ${phaseWord(event).padEnd(12)}  ${describe(event, updatedWord)}`) : Effect.void)
        case "bar":
          return Effect.flatMap(due(event, redrawIntervalMs), (print) => {
            if (!print) return Effect.void
            const finished = event.phase === "completed" || event.phase === "skipped"
            const line = `${name(event.job)}  ${bar(event.percent)}  ${describe(event, updatedWord)}${finished ? `  ${phaseWord(event)}` : ""}`
            // A line wider than the terminal wraps, and "\r" then redraws only its last part.
            const columns = process.stdout.columns
            const text = `\r\x1b[K${columns !== undefined && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line}`
            return Effect.zipRight(
              Terminal.writeStdout(finished ? `${text}\n` : text),
              Ref.set(openBar, finished ? undefined : event.job)
            )
          })
      }
    }

    const close = Effect.flatMap(Ref.getAndSet(openBar, undefined), (job) => (job === undefined ? Effect.void : Terminal.writeStdout("\n")))

    return { show, close }
  })
