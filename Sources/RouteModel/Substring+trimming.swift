extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's OWS), for header and annotation values.
    public func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
