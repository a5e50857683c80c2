/**
 * Runs the BUILT `strata` binary (`packages/cli/dist/bin.js`, built by `tsc -b` before vitest) as a
 * child process, the way a user's shell does: arguments, environment, exit code, stdout, stderr.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

/** The built entry point. */
export const binPath = fileURLToPath(new URL("../../dist/bin.js", import.meta.url))

/** How a run ended. */
export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Options of `strata`. */
export interface RunOptions {
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly cwd?: string
  /**
   * Sends SIGINT once stdout contains this text (or matches this predicate), as Ctrl-C would.
   */
  readonly interruptWhen?: (stdout: string) => boolean
  /** Called with all of stdout so far on every chunk (e.g. to act on the database once work is under way). */
  readonly onStdout?: (stdout: string) => void
  /**
   * Runs under `ulimit -f` (512-byte blocks): a write past that size fails, as on a full disk
   * (the kernel's EFBIG; SQLite reports it as a disk I/O error).
   */
  readonly fileSizeLimitBlocks?: number
  readonly timeoutMs?: number
}

// The parent's environment minus what would change how strata behaves under test. The suites
// work on the built-in agentos plan, named through STRATA_PLAN (a test of the "no plan" refusal
// removes it with `env: { STRATA_PLAN: undefined }`).
const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && name !== "STRATA_DATABASE_URL" && name !== "STRATA_PLAN" && name !== "FORCE_COLOR") env[name] = value
  }
  env["NO_COLOR"] = "1"
  env["STRATA_PLAN"] = "agentos"
  return env
}

/** Runs `node dist/bin.js ...args` to completion. */
export const strata = (args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Result> =>
  new Promise((resolve, reject) => {
    const env = { ...baseEnv() }
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[name]
      else env[name] = value
    }
    const command = options.fileSizeLimitBlocks === undefined
      ? [process.execPath, binPath, ...args]
      : ["/bin/sh", "-c", `ulimit -f ${options.fileSizeLimitBlocks} && exec "$0" "$@"`, process.execPath, binPath, ...args]
    const child = spawn(command[0]!, command.slice(1), {
      cwd: options.cwd ?? process.cwd(),
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let interrupted = false
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      options.onStdout?.(stdout)
      if (!interrupted && options.interruptWhen?.(stdout) === true) {
        interrupted = true
        child.kill("SIGINT")
      }
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`strata ${args.join(" ")} timed out\nstdout:\n${stdout}\nstderr:\n${stderr}`))
    }, options.timeoutMs ?? 90_000)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

/**
 * The `--json` result: stdout must be JSON lines whose last (and only last) is `"type": "result"`.
 * Returned without `type` and `command`, which `result` checks.
 */
export const json = <A = any>(result: Result, command?: string): A => {
  const lines = jsonLines<Record<string, unknown>>(result)
  const last = lines.at(-1)
  if (last === undefined || last["type"] !== "result" || lines.slice(0, -1).some((line) => line["type"] === "result")) {
    throw new Error(`stdout does not end in exactly one result line:\n${show(result)}`)
  }
  if (command !== undefined && last["command"] !== command) throw new Error(`result of ${String(last["command"])}, expected ${command}`)
  const { command: _command, type: _type, ...rest } = last
  return rest as A
}

/** Parses stdout as JSON lines (every line must be one JSON object). */
export const jsonLines = <A = any>(result: Result): ReadonlyArray<A> =>
  result.stdout.split("\n").filter((line) => line !== "").map((line) => {
    try {
      return JSON.parse(line) as A
    } catch (error) {
      throw new Error(`stdout line is not JSON (${(error as Error).message}): ${line}\n${show(result)}`)
    }
  })

/** A result rendered for assertion messages. */
export const show = (result: Result): string =>
  `exit ${result.code ?? result.signal}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`
