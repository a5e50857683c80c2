// Writes plan.schema.json from the built Plan Schema (run through `pnpm --filter @strata/core gen:schema`).
import { writeFileSync } from "node:fs"
import { PlanJsonSchema } from "../dist/index.js"

writeFileSync(new URL("../plan.schema.json", import.meta.url), PlanJsonSchema.text())
