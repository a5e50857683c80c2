/**
 * IANA time-zone lookups through `Intl` (the only zone database a pure module can reach),
 * with one cached formatter pair per zone because constructing them costs far more than using them.
 * @internal
 */

interface ZoneFormatters {
  readonly offset: Intl.DateTimeFormat
  readonly shortName: Intl.DateTimeFormat
}

const formattersByZone = new Map<string, ZoneFormatters>()

/** The formatters for `zone`, or a reason why `Intl` rejects the zone. */
export const zoneFormatters = (zone: string): ZoneFormatters | string => {
  const cached = formattersByZone.get(zone)
  if (cached !== undefined) return cached
  try {
    const formatters: ZoneFormatters = {
      offset: new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" }),
      shortName: new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "short" })
    }
    formattersByZone.set(zone, formatters)
    return formatters
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
}

const zoneNamePart = (formatter: Intl.DateTimeFormat, ms: number): string =>
  formatter.formatToParts(ms).find((part) => part.type === "timeZoneName")?.value ?? "GMT"

/** UTC offset of `zone` at instant `ms`, in seconds (local mean times carry seconds, e.g. `GMT-04:56:02`). */
export const offsetSecondsAt = (formatters: ZoneFormatters, ms: number): number => {
  const text = zoneNamePart(formatters.offset, ms)
  // "GMT" alone means +00:00; otherwise "GMT±HH:MM" or "GMT±HH:MM:SS".
  if (text.length <= 3) return 0
  const sign = text.charCodeAt(3) === 45 || text.charCodeAt(3) === 0x2212 ? -1 : 1
  const [hours = "0", minutes = "0", seconds = "0"] = text.slice(4).split(":")
  return sign * (Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds))
}

/** The zone's short name at instant `ms` as `Intl` spells it in en-US, e.g. `UTC`, `EST`, `GMT+8`. */
export const shortNameAt = (formatters: ZoneFormatters, ms: number): string => zoneNamePart(formatters.shortName, ms)
