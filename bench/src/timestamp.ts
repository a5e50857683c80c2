/**
 * `Timestamp.parse` throughput against two baselines measured in the same run on the same 1,000,000
 * mixed strings: `Date.parse`, and the parser as it was before issue 12 widened its grammar (a frozen
 * copy, `baseline/timestampParse.ts`), whose valid-input cost today's must stay within 1.2x of.
 * `Date.parse` is only a speed reference: it reads naive text in the machine's local zone and rolls
 * `2024-02-30` over to March, which is why strata does not use it.
 */
import { Timestamp } from "@strata/core"
import { Either } from "effect"
import { parseEpochMillisBaseline } from "./baseline/timestampParse.js"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { interleavedMedians, seededRandom } from "./harness.js"

const INPUTS = 1_000_000

const FIRST_MS = Date.UTC(1990, 0, 1)
const SPAN_MS = Date.UTC(2040, 0, 1) - FIRST_MS

/**
 * The shapes a backfill meets: SQLite `CURRENT_TIMESTAMP` text (40%), Python `isoformat(" ")` with
 * microseconds (15%), JS ISO with `Z` (15%), ISO with an offset (15%), date only (10%), and
 * invalid dates (5%).
 */
const mixedInputs = (): { readonly all: ReadonlyArray<string>; readonly valid: ReadonlyArray<string> } => {
  const random = seededRandom(20240115)
  const inputs: Array<string> = []
  const valid: Array<string> = []
  for (let i = 0; i < INPUTS; i++) {
    const iso = new Date(FIRST_MS + Math.floor(random() * SPAN_MS)).toISOString()
    const shape = random()
    if (shape < 0.40) inputs.push(`${iso.slice(0, 10)} ${iso.slice(11, 19)}`)
    else if (shape < 0.55) inputs.push(`${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(Math.floor(random() * 1000)).padStart(3, "0")}`)
    else if (shape < 0.70) inputs.push(iso)
    else if (shape < 0.85) inputs.push(`${iso.slice(0, 19)}${random() < 0.5 ? "+08:00" : "-05:30"}`)
    else if (shape < 0.95) inputs.push(iso.slice(0, 10))
    else {
      inputs.push(`${iso.slice(0, 4)}-02-30 ${iso.slice(11, 19)}`)
      continue
    }
    valid.push(inputs[inputs.length - 1]!)
  }
  return { all: inputs, valid }
}

/**
 * The forms issue 12 added to the default grammar, one million of them: lowercase `t`/`z`, a space
 * before the offset, a ` UTC` suffix, an RFC 9557 annotation, offset seconds, a decimal comma,
 * ISO 8601 basic format and surrounding whitespace, in equal shares.
 */
const newFormInputs = (): ReadonlyArray<string> => {
  const random = seededRandom(20011227)
  const inputs: Array<string> = []
  for (let i = 0; i < INPUTS; i++) {
    const iso = new Date(FIRST_MS + Math.floor(random() * SPAN_MS)).toISOString()
    const date = iso.slice(0, 10)
    const time = iso.slice(11, 19)
    switch (i % 8) {
      case 0: inputs.push(`${date}t${time}z`); break
      case 1: inputs.push(`${date} ${time} +0000`); break
      case 2: inputs.push(`${date} ${time} UTC`); break
      case 3: inputs.push(`${date}T${time}.123+05:30[Asia/Kolkata]`); break
      case 4: inputs.push(`${date}T${time}+00:09:21`); break
      case 5: inputs.push(`${date}T${time},123Z`); break
      case 6: inputs.push(`${date.replace(/-/g, "")}T${time.replace(/:/g, "")}Z`); break
      default: inputs.push(`${date} ${time}\r\n`)
    }
  }
  return inputs
}

/** What `Timestamp.parse` was for valid text before issue 12: the frozen parser and the same `Either` around it. */
const baselineParse = (text: string): Either.Either<number, string> => {
  const result = parseEpochMillisBaseline(text)
  return typeof result === "number" ? Either.right(result) : Either.left(result)
}

/** Module state the optimiser cannot prove unused: every case folds its results into it, so no loop is dropped. */
export let sink = 0

export const benchmark: BenchmarkModule = {
  name: "timestamp",
  description: `Timestamp.parse vs Date.parse and vs the pre-issue-12 parser (a frozen copy) on the same ${
    INPUTS.toLocaleString("en-US")
  } mixed strings (5% invalid), and on as many strings in the forms issue 12 added`,
  run: async () => {
    const { all, valid } = mixedInputs()
    const parseWithDate = (inputs: ReadonlyArray<string>) => () => {
      let sum = 0
      for (let i = 0; i < inputs.length; i++) {
        const ms = Date.parse(inputs[i]!)
        if (ms === ms) sum += ms
      }
      sink += sum
    }
    const parseWithTimestamp = (inputs: ReadonlyArray<string>) => () => {
      let sum = 0
      for (let i = 0; i < inputs.length; i++) {
        const result = Timestamp.parse(inputs[i]!)
        if (result._tag === "Right") sum += result.right
      }
      sink += sum
    }
    const parseWithBaseline = (inputs: ReadonlyArray<string>) => () => {
      let sum = 0
      for (let i = 0; i < inputs.length; i++) {
        const result = baselineParse(inputs[i]!)
        if (result._tag === "Right") sum += result.right
      }
      sink += sum
    }
    const newForms = newFormInputs()
    const cases = [
      parseWithDate(all),
      parseWithTimestamp(all),
      parseWithDate(valid),
      parseWithTimestamp(valid),
      parseWithBaseline(valid),
      parseWithTimestamp(newForms)
    ]
    // Warm every case up so the first repetition is not billed for compilation.
    for (const work of cases) work()
    const [dateAll, timestampAll, dateValid, timestampValid, baselineValid, timestampNew] = interleavedMedians(cases) as [
      number,
      number,
      number,
      number,
      number,
      number
    ]
    const rejectedNewForms = newForms.filter((text) => Either.isLeft(Timestamp.parse(text))).length

    let disagreements = 0
    for (const input of all) {
      const ours = Either.getOrUndefined(Timestamp.parse(input))
      const theirs = Date.parse(input)
      if (ours === undefined ? !Number.isNaN(theirs) : ours !== theirs) disagreements++
    }

    const nsPerString = (totalMs: number, inputs: ReadonlyArray<string>) => (totalMs * 1e6) / inputs.length
    const zone = process.env["TZ"] ?? Intl.DateTimeFormat().resolvedOptions().timeZone
    return [
      { case: "Date.parse, all inputs (baseline)", median: nsPerString(dateAll, all), unit: "ns/string", ratio: 1 },
      { case: "Timestamp.parse, all inputs", median: nsPerString(timestampAll, all), unit: "ns/string", ratio: timestampAll / dateAll },
      { case: `Date.parse, the ${valid.length.toLocaleString("en-US")} valid inputs (baseline)`, median: nsPerString(dateValid, valid), unit: "ns/string", ratio: 1 },
      { case: "Timestamp.parse, the valid inputs", median: nsPerString(timestampValid, valid), unit: "ns/string", ratio: timestampValid / dateValid },
      { case: "Timestamp.parse before issue 12 (frozen copy), the valid inputs (baseline)", median: nsPerString(baselineValid, valid), unit: "ns/string", ratio: 1 },
      { case: "Timestamp.parse, the valid inputs, vs the frozen copy", median: nsPerString(timestampValid, valid), unit: "ns/string", ratio: timestampValid / baselineValid },
      { case: `Timestamp.parse, ${newForms.length.toLocaleString("en-US")} strings in the forms issue 12 added`, median: nsPerString(timestampNew, newForms), unit: "ns/string", ratio: undefined },
      { case: "of those, rejected (must be 0)", median: rejectedNewForms, unit: "strings", ratio: undefined },
      { case: `inputs where Date.parse gives another answer (TZ=${zone})`, median: disagreements, unit: "strings", ratio: undefined }
    ] satisfies ReadonlyArray<BenchmarkRow>
  }
}
