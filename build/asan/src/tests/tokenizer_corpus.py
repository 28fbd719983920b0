"""Strings for tokenizer parity tests: prose, code, JSON, whitespace, scripts, digits, markers.

`corpus(markers)` takes the texts of the model's function-calling tokens (ids 46..52, which
differ between the stock and the converted model) so the same corpus fits either file.
"""
from __future__ import annotations

PROSE = [
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Turn on the kitchen lights and set them to 40% brightness.",
    "What's the weather like in Zürich tomorrow?",
    "I'd like to book a table for two at 7:30 pm, please.",
    "She said, \"It isn't over until it's over.\"",
    "Don't, won't, can't, shouldn't've — contractions galore.",
    "In 1969, Neil Armstrong walked on the Moon.",
    "Mr. and Mrs. Smith live at 221B Baker Street, London NW1 6XE.",
    "e.g. i.e. etc. vs. a.m. p.m.",
    "Rain, rain, go away; come again another day!",
    "Supercalifragilisticexpialidocious is a very long word.",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "camelCaseIdentifierWithManyHumps and snake_case_identifier",
    "A sentence ending with ellipsis...",
    "Questions?! Exclamations!! Interrobangs‽",
    "Set an alarm for 6 am on weekdays.",
    "Remind me to call Mom at 5.",
    "Play some jazz in the living room.",
    "What is 2 + 2 * 3?",
    "The temperature is -3.5°C (26.7°F).",
    "Email me at someone@example.com or visit https://example.org/path?q=1&r=2#frag.",
    "A line\nanother line\n\nand a paragraph.",
    "Tab\tseparated\tvalues\there",
    "Windows\r\nline\r\nendings\r\n",
    "Bullet list:\n- one\n- two\n  - nested\n* star\n1. numbered",
    "# Heading\n\n## Subheading\n\n**bold** _italic_ `code`",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "Once upon a time, in a land far, far away, there lived a tokenizer that merged pairs by "
    "score and never looked back.",
    "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer",
    "lowercase words only here",
    "   ",
    "x",
    "I",
    "a",
    " a",
    "a ",
    "The end.",
]

CODE = [
    "def f(x):\n    return x * 2\n",
    "def f(x):\n\treturn {\"a\": [1, 2.5e-3]}\n",
    "for (int i = 0; i < n; i++) {\n    sum += a[i] * b[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "const add = (a, b) => a + b;\nconsole.log(add(1, 2));",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
    "if x == None:\n    pass\nelif x != 0:\n    x += 1\nelse:\n    x -= 1",
    "ls -la /tmp && grep -rn 'TODO' src/ | wc -l",
    "<div class=\"a\"><span>text</span></div>",
    "<table><tr><td>1</td><td>2</td></tr></table>",
    "<h1>Title</h1><p>para</p><code>x = 1</code>",
    "a = [x**2 for x in range(10) if x % 2 == 0]",
    "fn main() {\n    let v: Vec<i32> = vec![1, 2, 3];\n}",
    "class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self):\n        super().__init__()\n",
    "x<<=2; y>>=3; z^=~w; a&&b||!c",
    "    indented four\n        indented eight\n\t\ttwo tabs",
    "// comment\n/* block\n   comment */",
    "@decorator\ndef g(*args, **kwargs): ...",
    "regex = r'^\\s*(\\d+)\\s*$'",
    "{{template}} ${var} %s %d %(name)s",
]

JSON = [
    '{"name": "turn_on_light", "arguments": {"room": "kitchen", "brightness": 40}}',
    '{"a":1,"b":[true,false,null],"c":{"d":"e"}}',
    '[1, 2, 3, 4.5, -6, 7e10]',
    '{\n  "key": "value",\n  "list": [\n    1,\n    2\n  ]\n}',
    '{"unicode": "caf\\u00e9", "emoji": "\\ud83d\\ude00"}',
    '{"nested": {"deeper": {"deepest": []}}}',
    '{"empty": "", "space": " ", "tab": "\\t"}',
    '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}',
    '""',
    '{}',
    '[]',
    '{"price": 19.99, "currency": "EUR", "in_stock": true}',
    '{"query": "SELECT * FROM t WHERE x = \'y\'"}',
    '{"path": "C:\\\\Users\\\\me\\\\file.txt"}',
    '{"html": "<b>bold</b>"}',
]

SCRIPTS = [
    "héllo wörld",
    "Ça va? Où est la bibliothèque? À bientôt!",
    "Straße, Mädchen, Fußgängerübergänge",
    "niño, señor, mañana, ¿qué tal?",
    "Dziękuję bardzo, żółć, źdźbło",
    "Ελληνικά: Γειά σου Κόσμε",
    "Русский текст: Привет, мир!",
    "日本語のテキストです。東京タワー",
    "中文测试：你好，世界！",
    "한국어 문장입니다. 안녕하세요",
    "مرحبا بالعالم",
    "السلام عليكم ورحمة الله",
    "नमस्ते दुनिया",
    "हिन्दी में एक वाक्य है।",
    "ภาษาไทย สวัสดีครับ",
    "עברית: שלום עולם",
    "Tiếng Việt: Xin chào thế giới",
    "emoji 🤖🚀🎉",
    "family 👨‍👩‍👧‍👦 and flags 🇩🇪🇯🇵",
    "skin tones 👍🏽👋🏿",
    "math ∑∫√∞≈≠≤≥ and arrows ←→↑↓",
    "currency € £ ¥ ₹ ₿ $",
    "combining e\u0301 a\u0300 n\u0303",
    "zero\u200bwidth\u200djoiner",
    "rare CJK 𠀀𠀁 and private use \ue000\uf8ff",
    "box ─│┌┐└┘ and braille ⠁⠃⠉",
    "fullwidth ＡＢＣ１２３",
    "mixed English 和 中文 and العربية in one line",
    "ıİ ǅ ß ẞ ﬁ ﬂ",
    "♠♣♥♦ ☀☁☂ ✓✗",
    "\x00\x01\x02 control bytes \x7f",
    "bell\a backspace\b formfeed\f vtab\v",
    "ümlaut at end ü",
    "¿¡",
    "…",
    "—–-",
    "“curly quotes” ‘single’ «guillemets»",
    "Ñandú",
    "ॐ",
    "🙂",
]

DIGITS = [
    "0", "7", "42", "123", "1234", "12345", "123456789", "3.14159", "-0.001", "1e-9",
    "2024-06-01", "12:34:56", "+1 (555) 123-4567", "1,000,000", "1.000.000,50",
    "0x1F 0b1010 0o777", "v1.2.3-rc.4", "99.9%", "10/10/2010", "٠١٢٣٤٥٦٧٨٩ ०१२३",
]

# Runs of one character: every adjacent pair has the same score, so only the tie rule
# (leftmost pair first) decides the merges.
REPEATS = [";;;", ";;;;;", "aaaaaaa", "!!!!!", "-----", "=====", ".......", "0000000", "xxxxx",
           "ababab", "abcabcabc", "日日日", "🤖🤖🤖", "ééééé", "____", "****", "~~~", "<<<>>>"]

# Gemma-format literals that are special tokens only when special=True.
LITERALS = [
    "<bos>x", "<eos>", "<pad><unk><mask>", "[multimodal]", "<start_of_image>", "<end_of_image>",
    "abc<0x0A>def", "<0xFF>", "<unused0><unused99>", "<unused6241>", "<start_of_turn",
    "start_of_turn>", "<<start_of_turn>>", "< start_of_turn >", "<unk>text<unk>",
]


def _whitespace():
    out = []
    for ch in (" ", "\t", "\n"):
        for n in (1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 40):
            out.append(ch * n)
            out.append("a" + ch * n + "b")
    out += ["\r", "\r\n", "\n\r", " \n", "\n ", "\t\n", " \t \n \t", "\n\n\n\n\n\nend",
            " leading", "trailing ", "  both  ", "\tlead tab", "trail tab\t", "\nlead nl",
            "trail nl\n", " \t\n mixed \n\t ", "a \n b", "word  word   word    word",
            "\u00a0non-breaking\u00a0space", "ideographic\u3000space", "\u2581literal lower one eighth"]
    return out


def _chat(markers):
    start_decl, end_decl, start_call, end_call, start_resp, end_resp, esc = markers
    out = [
        "<start_of_turn>user\nhi<end_of_turn>\n",
        "<start_of_turn>user\nTurn on the lights.<end_of_turn>\n<start_of_turn>model\n",
        "<start_of_turn>developer\nYou are a helpful assistant.<end_of_turn>\n"
        "<start_of_turn>user\nWhat time is it?<end_of_turn>\n<start_of_turn>model\nNoon."
        "<end_of_turn>\n",
        "<start_of_turn>model\n<end_of_turn>",
        "<start_of_turn><end_of_turn><start_of_turn>",
        "text before<start_of_turn>user\n  spaced  \n<end_of_turn>  after  ",
        "<bos><start_of_turn>user\nhello<end_of_turn>\n",
        f"{start_decl}declaration:turn_on_light{{description:{esc}Turn a light on{esc},"
        f"parameters:{{properties:{{room:{{type:{esc}STRING{esc}}}}}}}}}{end_decl}",
        f"{start_call}call:turn_on_light{{room:{esc}kitchen{esc}}}{end_call}",
        f"{start_resp}response:turn_on_light{{ok:true}}{end_resp}",
        f"<start_of_turn>model\n{start_call}call:set_alarm{{time:{esc}06:00{esc}}}{end_call}"
        f"{start_resp}",
        f"{esc}{esc}{esc}",
        f"{start_call}{end_call}{start_resp}{end_resp}{start_decl}{end_decl}",
        f"x{start_call}y{end_call}z",
        f" {esc} leading and trailing spaces {esc} ",
        f"{start_decl}\n{end_decl}\n\n{start_call}\t{end_call}",
        f"call:{esc}{{\"json\": \"inside\"}}{esc}",
        f"<start_of_turn>user\n{start_decl}declaration:get_weather{{}}{end_decl}"
        f"What's the weather?<end_of_turn>",
    ]
    out += [m for m in markers] + [m + "\n" for m in markers] + [" " + m + " " for m in markers]
    return out


def corpus(markers):
    """The full corpus (>= 300 strings); markers: the seven texts of ids 46..52."""
    base = PROSE + CODE + JSON + SCRIPTS + DIGITS + REPEATS + LITERALS + _whitespace() + _chat(markers)
    # Each base string again with whitespace around it: exercises the edges of fragments.
    wrapped = [pre + s + post for s, (pre, post) in
               zip(PROSE + SCRIPTS + DIGITS, [(" ", ""), ("", " "), ("\n", "\n"), ("  ", "\t")] * 40)]
    items = [""] + base + wrapped
    return list(dict.fromkeys(items))


def long_text(markers, repeat=40) -> str:
    """A long mixed document (hundreds of KiB) for throughput measurements."""
    return "\n".join(corpus(markers) * repeat)
