/// A file name someone else chose, made safe to show and to offer for download, whichever way it
/// came (a mail's Content-Disposition, a web form, a chat, an agent's upload).
public enum SafeFileName {
    /// Path separators, control characters and bidirectional controls become `_`: `../../x` is never
    /// taken for a path, a line break never reaches a header, and `invoice‮fdp.exe` (a right-to-left
    /// override) cannot show itself as `invoiceexe.pdf`.
    public static func clean(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { scalar in
            scalar == "/" || scalar == "\\" || scalar.properties.generalCategory == .control || isBidiControl(scalar) ? "_" : scalar
        }))
    }

    /// U+061C, U+200E–U+200F, U+202A–U+202E and U+2066–U+2069: the characters that reorder text.
    static func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
