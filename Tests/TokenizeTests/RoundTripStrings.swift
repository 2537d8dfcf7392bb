import Foundation

/// Strings for round-trip checks: unicode, emoji, CJK, whitespace runs, tabs/newlines.
let roundTripStrings = [
    "Hello world",
    "I believe the meaning of life is",
    "Café naïve résumé Ångström e\u{301}",
    "Emoji 😀👍🏽 🇺🇸 👨‍👩‍👧 done",
    "中文字符和日本語のテキスト 한국어",
    "Multiple   spaces   and  trailing  ",
    "   leading spaces",
    "tabs\tand\t\tnewlines\n\nCRLF\r\nend\n",
    "Numbers 12345 3.14159 1,000,000",
    "I'm sure they'll say it's what we've done",
    "",
    " ",
]
