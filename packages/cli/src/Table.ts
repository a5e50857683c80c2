/**
 * Aligned plain-text tables for people (the `--json` output carries the same data for machines).
 *
 * @since 0.1.0
 */

/**
 * One column: its header, how to read a cell from a row, and which side it hugs.
 *
 * @since 0.1.0
 */
export interface Column<Row> {
  readonly header: string
  readonly cell: (row: Row) => string
  readonly align?: "left" | "right"
}

/**
 * The table as lines: header, a rule, then one line per row; columns separated by two spaces,
 * trailing spaces trimmed.
 *
 * @since 0.1.0
 */
export const render = <Row>(columns: ReadonlyArray<Column<Row>>, rows: ReadonlyArray<Row>): ReadonlyArray<string> => {
  const cells = rows.map((row) => columns.map((column) => column.cell(row)))
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i]!.length)))
  const line = (values: ReadonlyArray<string>) =>
    values
      .map((value, i) => (columns[i]!.align === "right" ? value.padStart(widths[i]!) : value.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [line(columns.map((c) => c.header)), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)]
}

/**
 * A count with thousands separators (`1,234,567`), the same on every machine.
 *
 * @since 0.1.0
 */
export const count = (n: number): string => Math.trunc(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",")
