/**
 * @strata/chat — the reference agent/chat session store built on strata: its plan, the store,
 * buffered appends with read-your-writes, and the import from the legacy two-table layout.
 * @since 0.1.0
 */
export * as ChatPlan from "./ChatPlan.js"
export * as ChatModel from "./ChatModel.js"
export * as ChatStore from "./ChatStore.js"
export * as WriteBehind from "./WriteBehind.js"
export * as LegacyImport from "./LegacyImport.js"
