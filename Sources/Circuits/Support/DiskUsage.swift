import Foundation
import Transformer

public enum DiskUsage {
    /// Size of a file, or the sum over a directory's regular files (recursively).
    public static func bytes(_ path: String) -> Int {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return 0 }
        if !isDir.boolValue { return (try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        var total = 0
        guard let e = fm.enumerator(atPath: path) else { return 0 }
        while let f = e.nextObject() as? String {
            guard let a = try? fm.attributesOfItem(atPath: path + "/" + f),
                  a[.type] as? FileAttributeType == .typeRegular else { continue }
            total += (a[.size] as? Int) ?? 0
        }
        return total
    }

    public static func human(_ n: Int) -> String {
        let units = ["B", "KB", "MB", "GB"]
        var v = Double(n), u = 0
        while v >= 1000, u < units.count - 1 { v /= 1000; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }
}
