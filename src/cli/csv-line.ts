/**
 * One CSV line (RFC 4180 quoting). Unlike the click export (src/analytics/click-csv.ts), no
 * cell is altered against spreadsheet formulas: these files are read back by `shunt import`,
 * which must get exactly the text that was written.
 */
export function csvLine(cells: readonly (string | number | null)[]): string {
  return `${cells
    .map((cell) => {
      const value = cell === null ? '' : String(cell);
      return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
    })
    .join(',')}\r\n`;
}
