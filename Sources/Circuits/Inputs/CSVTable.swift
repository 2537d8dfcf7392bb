import Foundation

// MARK: - CSV (RFC 4180)
//
// EAP-IG and MIB ship their task sets as pandas-written CSV: a header row,
// quoted cells when a cell holds a comma, quote or newline ("" escapes a quote),
// often an unnamed index column first. Rows are numbered by the line they start
// on so errors can name it.

public struct CSVTable: Equatable {
    public var header: [String]
    /// Each row's cells and the 1-based line it starts on.
    public var rows: [(line: Int, cells: [String])]

    public static func == (a: CSVTable, b: CSVTable) -> Bool {
        a.header == b.header && a.rows.map(\.line) == b.rows.map(\.line) && a.rows.map(\.cells) == b.rows.map(\.cells)
    }

    /// Parses `contents`; blank lines are skipped; every row must have the header's cell count.
    public static func parse(_ contents: String, path: String) throws -> CSVTable {
        var records: [(line: Int, cells: [String])] = []
        var cells: [String] = [], cell = "", inQuotes = false, afterQuote = false
        var line = 1, recordLine = 1, rowHasContent = false
        func endCell() { cells.append(cell); cell = ""; afterQuote = false }
        func endRecord() {
            endCell()
            if rowHasContent || cells.count > 1 || !(cells.first ?? "").isEmpty { records.append((recordLine, cells)) }
            cells = []; rowHasContent = false
        }
        var it = Array(contents.unicodeScalars)[...]
        while let c = it.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if it.first == "\"" { it.removeFirst(); cell.unicodeScalars.append("\"") } else { inQuotes = false; afterQuote = true }
                } else {
                    if c == "\n" { line += 1 }
                    cell.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard cell.isEmpty, !afterQuote else {
                    throw TaskError.invalidCSV(SourceLocation(file: path, line: line), reason: "a quote inside an unquoted cell")
                }
                inQuotes = true; rowHasContent = true
            case ",": endCell(); rowHasContent = true
            case "\r" where it.first == "\n": continue
            case "\n", "\r":
                endRecord(); line += 1; recordLine = line
            default:
                guard !afterQuote else {
                    throw TaskError.invalidCSV(SourceLocation(file: path, line: line), reason: "text after a closing quote")
                }
                cell.unicodeScalars.append(c); rowHasContent = true
            }
        }
        if inQuotes { throw TaskError.invalidCSV(SourceLocation(file: path, line: recordLine), reason: "unterminated quoted cell") }
        endRecord()
        guard let header = records.first else { throw TaskError.emptyTaskFile(path: path) }
        let rows = Array(records.dropFirst())
        for r in rows where r.cells.count != header.cells.count {
            throw TaskError.invalidCSV(SourceLocation(file: path, line: r.line),
                                       reason: "\(r.cells.count) cells, but the header has \(header.cells.count)")
        }
        return CSVTable(header: header.cells, rows: rows)
    }
}
