#!/usr/bin/env node
/**
 * The `strata` executable.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Logger, LogLevel } from "effect"
import * as Cli from "./Cli.js"
import * as Outcome from "./Outcome.js"
import * as Terminal from "./Terminal.js"

// `pnpm strata …` runs the script from the repository root; relative paths (--db, --plan, --backup)
// mean the directory the user typed the command in, which pnpm passes as INIT_CWD.
const invokedFrom = process.env["INIT_CWD"]
if (process.env["npm_lifecycle_event"] === "strata" && invokedFrom !== undefined && invokedFrom !== "") {
  process.chdir(invokedFrom)
}

const main = Effect.gen(function*() {
  const console = yield* Effect.console
  return yield* Cli.run(process.argv).pipe(Effect.withConsole(Terminal.plainWhenPiped(console)))
}).pipe(
  // strata's own output is the result; service logs below warning only with --log-level info/debug.
  Logger.withMinimumLogLevel(LogLevel.Warning),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  // Each command installs strata's logger (stderr, pretty or JSON); runMain's own would log everything twice.
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(typeof exit.value === "number" ? exit.value : Outcome.ok)
    if (Cause.isInterruptedOnly(exit.cause)) return onExit(Outcome.interrupted)
    // Not reached in practice: Cli.run reports every failure itself. Never exit 0 on one.
    process.stderr.write(`strata: unexpected error: ${Cause.pretty(exit.cause)}\n`)
    onExit(Outcome.failed)
  }
})

