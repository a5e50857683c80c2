/**
 * Real `strata` processes for the fleet tests: the built CLI (`tsc -b` first), its JSON lines
 * collected, optionally SIGKILLed once a condition on what it printed holds.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const bin = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "packages", "cli", "dist", "bin.js")

/** What a finished (or killed) process left. */
export interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly lines: ReadonlyArray<Record<string, unknown>>
  readonly stdout: string
  readonly stderr: string
}

/** A running `strata` process. */
export interface Running {
  readonly child: ChildProcess
  readonly lines: Array<Record<string, unknown>>
  /** What it has written to stderr so far (its logs). */
  readonly stderrSoFar: () => string
  readonly done: Promise<Finished>
}

/** Starts `strata ...args` in `cwd`; with `killWhen`, SIGKILLs it the first time the printed lines satisfy it. */
export const start = (
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly killWhen?: (lines: ReadonlyArray<Record<string, unknown>>) => boolean }
): Running => {
  const child = spawn(process.execPath, [bin, ...args], { cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] })
  const lines: Array<Record<string, unknown>> = []
  let stdout = ""
  let stderr = ""
  let pending = ""
  let killed = false
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk
    pending += chunk
    const parts = pending.split("\n")
    pending = parts.pop()!
    for (const part of parts) {
      if (part.trim() === "") continue
      try {
        lines.push(JSON.parse(part) as Record<string, unknown>)
      } catch {
        lines.push({ text: part })
      }
    }
    if (!killed && options.killWhen?.(lines) === true) {
      killed = true
      child.kill("SIGKILL")
    }
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk
  })
  const done = new Promise<Finished>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, lines, stdout, stderr }))
  )
  return { child, lines, stderrSoFar: () => stderr, done }
}

/** Runs `strata ...args` to its end. */
export const run = (args: ReadonlyArray<string>, options: { readonly cwd: string; readonly killWhen?: (lines: ReadonlyArray<Record<string, unknown>>) => boolean }) =>
  start(args, options).done

/** The per-target progress events of a fleet run's JSON lines. */
export const targetEvents = (lines: ReadonlyArray<Record<string, unknown>>) =>
  lines.filter((l) => l["type"] === "progress" && l["event"] === "target")

/** The result line of a fleet run, if it got that far. */
export const resultOf = (lines: ReadonlyArray<Record<string, unknown>>) => lines.find((l) => l["type"] === "result")
