/// Merges Prometheus text expositions of several processes into one: every sample gets the
/// process's label (`worker="2"`), and each metric family's HELP and TYPE appear once, with all of
/// its samples together, as the format requires.
public enum MetricsMerger {
    public static func merge(_ sources: [(label: (name: String, value: String), text: String)]) -> String {
        var order: [String] = []
        var families: [String: (header: [String], samples: [String])] = [:]
        for source in sources {
            var declared: [String] = []  // families this source declared, longest names first for suffix matching
            var current: String?
            for line in source.text.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                    let name = String(line.dropFirst(7).prefix { $0 != " " })
                    if families[name] == nil {
                        families[name] = ([], [])
                        order.append(name)
                    }
                    if !(families[name]!.header.contains(String(line))) { families[name]!.header.append(String(line)) }
                    if !declared.contains(name) { declared.append(name) }
                    current = name
                    continue
                }
                if line.hasPrefix("#") { continue }
                let sampleName = String(line.prefix { $0 != "{" && $0 != " " })
                // A histogram's samples are NAME_bucket, NAME_sum and NAME_count.
                let family = declared.contains(sampleName) ? sampleName
                    : declared.first { sampleName.hasPrefix($0 + "_") } ?? current ?? sampleName
                if families[family] == nil {
                    families[family] = ([], [])
                    order.append(family)
                }
                families[family]!.samples.append(labelled(String(line), sampleName: sampleName, label: source.label))
            }
        }
        var output = ""
        for name in order {
            guard let family = families[name] else { continue }
            for line in family.header { output += line + "\n" }
            for sample in family.samples { output += sample + "\n" }
        }
        return output
    }

    /// `name{a="b"} 1` → `name{worker="2",a="b"} 1`; `name 1` → `name{worker="2"} 1`.
    static func labelled(_ line: String, sampleName: String, label: (name: String, value: String)) -> String {
        let pair = "\(label.name)=\"\(label.value)\""
        let rest = line.dropFirst(sampleName.count)
        if rest.hasPrefix("{}") { return sampleName + "{" + pair + "}" + rest.dropFirst(2) }
        if rest.hasPrefix("{") { return sampleName + "{" + pair + "," + rest.dropFirst() }
        return sampleName + "{" + pair + "}" + rest
    }
}
