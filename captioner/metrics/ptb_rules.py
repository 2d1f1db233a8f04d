"""Lexer rules for `captioner.metrics.ptb`, transcribing Stanford PTBLexer (CoreNLP 3.4.1).

Each rule is (token regex, trailing-context regex or None, action, chars pushed back). The
engine takes the longest match counting the trailing context, earlier rules winning ties,
as JFlex does. Inside `(?i:...)` literal letters are caseless; character classes never
are (JFlex `%caseless` semantics). Actions map the matched text to the emitted token, or
are SKIP (whitespace, deleted characters) / LINE (a caption ends).
Checked token for token against the 3.4.1 jar: ~200k fuzzed lines, every BMP character
between letters, between digits and alone, 62k multilingual Tux Paint descriptions and
the 3k UCI review sentences all agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Character sets, measured by running the 3.4.1 jar over every BMP character. Its
# [:letter:] / [:digit:] tables predate Unicode 6.1: characters Python calls letters or
# digits that the jar does not (later additions), and the extra word characters PTBLexer
# allows inside WORD (combining marks of many scripts, soft hyphen, a few symbols).
_NOT_IN_JAVA = (
    "037F 0528-052F 0558 0560 0588 058B-058C 05EF 0860-086A 0870-0887 0889-088F 08A1 08AD-08C9"
    " 0978 0980 09FC 0AF9 0C34 0C5A 0C5C-0C5D 0C80 0CDC-0CDD 0D04 0D54-0D56 0D5F 0DE6-0DEF 0E86"
    " 0E89 0E8C 0E8E-0E93 0E98 0EA0 0EA8-0EA9 0EAC 13F5 13F8-13FD 16F1-16F8 170D 171F 1878"
    " 191D-191E 19B0-19C0 19C8-19C9 1B4C 1C80-1C8A 1C90-1CBA 1CBD-1CBF 1CF2-1CF3 1CFA 208F"
    " 209D-209F 2C2F 2C5F 312E-312F 31BB-31BF 4DB6-4DBF 9FCD-9FFF A698-A69D A78F A794-A79F"
    " A7AB-A7DD A7E2 A7F1-A7F7 A8FD-A8FE A9E0-A9E4 A9E6-A9FE AA7E-AA7F AB30-AB5A AB5C-AB69"
    " AB6C-AB6D AB70-ABBF"
)
_JAVA_ONLY_LETTERS = "1885-1886"  # Mongolian letters that Unicode later made marks
_WORD_EXTRAS = (
    "00AD 0300-036F 02C2-02C5 02D2-02DF 02E5-02EB 02ED 02EF-02FF 0375 0378-0379 0384-0385 03F6"
    " 0483-0487 055A-055F 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0615-061A 064B-065E 0670"
    " 06D6-06E4 06E7-06ED 06FD-06FE 070F 0711 0730-074C 07A6-07B0 07EB-07F3 0900-0903 093C"
    " 093E-094E 0951-0955 0962-0963 0981-0983 09BC 09BE-09C4 09C7-09C8 09CB-09CD 09D7 09E2-09E3"
    " 0A01-0A03 0A3C 0A3E-0A4F 0A81-0A83 0ABC 0ABE-0ACF 0B82 0BBE-0BC2 0BC6-0BC8 0BCA-0BCD"
    " 0C01-0C03 0C3E-0C56 0D3E-0D44 0D46-0D48 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EBC 0EC8-0ECD"
)


def _codes(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.split():
        first, _, last = part.partition("-")
        out.update(range(int(first, 16), int(last or first, 16) + 1))
    return out


def _class_body(codes: set[int]) -> str:
    """Regex character-class body (no brackets) listing `codes` as ranges."""
    parts, ordered = [], sorted(codes)
    start = prev = ordered[0]
    for code in [*ordered[1:], -2]:
        if code != prev + 1:
            parts.append(f"\\u{start:04x}" + (f"-\\u{prev:04x}" if prev != start else ""))
            start = code
        prev = code
    return "".join(parts)


def _java_tables() -> tuple[set[int], set[int]]:
    """Code points of the jar's [:letter:] and [:digit:] (BMP only, as in Java's lexer)."""
    letters, digits = set(), set()
    for code in range(0x10000):
        ch = chr(code)
        if ch.isalpha():
            letters.add(code)
        elif ch.isdecimal():
            digits.add(code)
    not_java = _codes(_NOT_IN_JAVA)
    return (letters - not_java) | _codes(_JAVA_ONLY_LETTERS), digits - not_java


_letters, _digits = _java_tables()

# --- building blocks (the JFlex macros); literal words are caseless, classes are not ---
JLETTER = f"[{_class_body(_letters)}]"  # [:letter:]
D = f"[{_class_body(_digits)}]"  # [:digit:]
L = _class_body(_letters | _codes(_WORD_EXTRAS))  # letters inside WORD
SP = r"[ \t\u00a0\u2000-\u200a\u3000]"
NL = r"(?:\r\n|[\r\n\u2028\u2029\x0b\x0c\x85])"
SPNL = f"(?:{SP}|{NL})"
LETTER = rf"(?:[{L}]|&[aeiouAEIOU](?i:acute|grave|uml);)"
ALNUM = f"[{_class_body(_letters | _digits)}]"  # THING-style words: no soft hyphen or marks
WORD = rf"{LETTER}(?:{LETTER}|{D})*(?:[.!?]{LETTER}(?:{LETTER}|{D})*)*"
APOS = r"(?:['\x92\u2019]|&apos;)"
APOSX = rf"(?:{APOS}|[`\x91\u2018\u201b])"
REDAUX = rf"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SWORD = r"[A-Za-z\xad]*[A-MO-Za-mo-z]\xad*"
SREDAUX = rf"[nN]{APOSX}[tT]"
APOWORD = (
    rf"{APOS}[nN]{APOS}?|[lLdDjJ]{APOS}|(?i:dunkin|somethin|ol){APOS}|{APOS}(?i:em)"
    rf"|[A-HJ-XZn]{APOSX}{JLETTER}{{2,}}|{APOS}[2-9]0[sS]|{APOS}(?i:till?)"
    rf"|{JLETTER}+[aeiouyAEIOUY]{APOSX}[aeiouA-Z]{JLETTER}*|{APOS}(?i:cause)"
    rf"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)|(?i:o){APOSX}(?i:o)"
)
NUM = rf"{D}*(?:[.:,\xad\u066b\u066c]{D}+)+|{D}+"
NUMBER = rf"[-+]?(?:{NUM})"
HYPHEN = r"[-_\u058a\u2010\u2011]"
THING_PART = rf"(?:[dDoOlL]{APOSX}{ALNUM})?{ALNUM}+"
THING = rf"{THING_PART}(?:{HYPHEN}{THING_PART})*"
THINGA = r"[A-Z]+(?:(?:[+&]|(?i:&amp;))[A-Z]+)+"
THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
ACRO = r"[A-Za-z](?:\.[A-Za-z])*|(?i:canada|sino|korean|eu|japan|non)-(?i:u\.s)|(?i:u\.s\.-(?:u\.k|u\.s\.s\.r))"
ACRO2 = r"[A-Za-z](?:\.[A-Za-z])+"
HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\xad]*(?:-(?:[A-Za-z0-9\xad]+|{ACRO2}\.))+"
FILE_EXT = (
    "bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf"
    "|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip"
)
INSENTP = r"[,;:\u3001]"
_NAME = r"[A-Za-z][A-Za-z0-9_:.-]*"
SGML = (
    rf"<(?:[!?][A-Za-z-][^>\r\n]*|{_NAME}(?:[ ]+(?:{_NAME}|{_NAME}[ ]*=[ ]*"
    rf"(?:'[^']*'|\"[^\"]*\"|{_NAME})))*[ ]*/?|/{_NAME})[ ]*>"
)
NOTURL = r" \t\n\f\r\"<>|()"
SENT_OPENERS = (
    "About According Additionally After An A As At But Earlier He Her Here However If In It "
    "Last Many More Mr\\. Ms\\. Now Once One Other Our She Since So Some Such That The Their "
    "Then There These They This We When While What Yet You"
).split()
OPENER = "|".join(f"{w[0]}(?i:{w[1:]})" if len(w) > 1 else w for w in SENT_OPENERS) + "|" + SGML
ABBREV1 = (
    r"(?:(?i:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tues?|wed|thu|thurs|fri"
    r"|ala|ariz|calif|colo|conn|ct|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn"
    r"|tenn|va|vt|wisc?|wyo|inc|cos?|corp|pp?t[ye]s?|ltd|plc|rt|bancorp|bhd|assn|univ|intl|sys"
    r"|tel|est|ext|sq|jr|sr|bros|ed\.d|ph\.d|esq|blvd|rd|etc|al|seq|bldg)"
    r"|A(?i:rk|z)|D(?i:el)|I(?i:ll)|L(?i:a)|M(?i:ass|iss)|O(?i:re)|P(?i:a)|T(?i:ex)|W(?i:ash))\."
)
ABBREV4 = (
    r"(?i:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl"
    r"|pvt|capt|ste?|ave|pres|lieut|rt|hon|brig|c?o?mdr|pfc|spc|supts?|det|mt|ft|adj|adv|asst"
    r"|assoc|ens|insp|mlle|mme|msgr|sfc|sr|vs|alex|wm|jos|cie|a\.k\.a|cf|treas|ph|invt|elec|natl"
    rf"|m[ft]g|dept|blvd|rd)|M(?i:iss)|{ACRO}"
)
PHONE = (
    r"(?:\([0-9]{2,3}\)[ \xa0]?|(?:\+\+?)?(?:[0-9]{2,4}[- \xa0])?[0-9]{2,4}[- \xa0])"
    r"[0-9]{3,4}[- \xa0]?[0-9]{3,5}|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}"
)
SMILE_CH = r"[-\^x=~<>']"
MISC = (
    r"[+%&~\^|\\\xa6\xa7\xa8\xa9\xac\xae\xaf\xb0-\xba\xd7\xf7\u0387\u05be\u05c0\u05c3\u05c6"
    r"\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d"
    r"\u07f6-\u07f8\u0964\u0965\u0e4f\u1fbd\u2016\u2017\u2020-\u2023\u2030-\u2038\u203b"
    r"\u203e-\u2042\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff\u2200-\u2bff"
    r"\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)

_LATEX_QUOTES = [
    (re.compile("[\x91\u2018\u201b\u2039]"), "`"),
    (re.compile("[\x92\u2019\u203a]"), "'"),
    (re.compile("[\x93\u201c\xab]"), "``"),
    (re.compile("[\x94\u201d\xbb]"), "''"),
]


def _quotes(left: bool) -> Callable[[str], str]:
    def norm(tok: str) -> str:
        tok = re.sub("&apos;|'", "`" if left else "'", tok)
        tok = re.sub('"|&quot;', "``" if left else "''", tok)
        for pattern, repl in _LATEX_QUOTES:
            tok = pattern.sub(repl, tok)
        return tok

    return norm


def _keep(tok: str) -> str:
    return tok


def _no_soft_hyphen(tok: str) -> str:
    return tok.replace("\xad", "")


def _nbsp(tok: str) -> str:
    return tok.replace(" ", "\xa0")


def _parens(tok: str) -> str:
    return tok.replace("(", "-LRB-").replace(")", "-RRB-")


def _const(value: str) -> Callable[[str], str]:
    return lambda tok: value


def _currency(tok: str) -> str:
    return re.sub("[\x80\xa4\u20a0\u20ac]", "$", tok.replace("\xa2", "cents").replace("\xa3", "#"))


def _fraction(tok: str) -> str:
    table = {"\xbc": "1/4", "\xbd": "1/2", "\xbe": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
    return table.get(tok, tok)


def _dashes(tok: str) -> str:
    return "--" if 3 <= len(tok) <= 4 else tok


def _acronym(tok: str) -> str:
    # the period was pushed back; "B." before "The" gives "b", "U.S." keeps (and repeats) it
    return tok if len(tok) == 1 else tok + "."


SKIP, LINE = "skip", "line"  # pseudo-actions: drop the text / end the current caption
# (token regex, trailing-context regex or None, action, chars pushed back for re-lexing)
RULES: list[tuple[str, str | None, object, int]] = [
    (r"(?i:c\+\+|(?:c|f)#)", None, _keep, 0),
    (r"(?i:cannot|'twas)", None, _keep, 3),
    (r"(?i:'tis|gonna|gotta|lemme|gimme|wanna)", None, _keep, 2),
    (SGML, None, _nbsp, 0),
    (r"&(?i:md|mdash|ndash);|[\x96\x97\u2013\u2014\u2015]", None, _const("--"), 0),
    (r"(?i:&amp;)", None, _const("&"), 0),
    (r"&(?i:ht|tl|ur|lr|qc|ql|qr|odq|cdq|#[0-9]+);", None, _keep, 0),
    (WORD, REDAUX, _no_soft_hyphen, 0),
    (SWORD, SREDAUX, _no_soft_hyphen, 0),
    (WORD, None, _no_soft_hyphen, 0),
    (APOWORD, None, _keep, 0),
    (r"[yY]" + APOS, JLETTER, _keep, 0),
    (rf"(?i:https?)://[^{NOTURL}{{}}]+[^{NOTURL}.!?{{}},-]", None, _keep, 0),
    (
        rf"(?:(?i:www)\.(?:[^{NOTURL}.!?{{}},]+\.)+[a-zA-Z]{{2,4}}|(?:[^{NOTURL}`'.!?{{}}\x2c-\x5f$]+\.)+"
        rf"(?i:com|net|org|edu))(?:/[^{NOTURL}]+[^{NOTURL}.!?{{}},-])?",
        None,
        _keep,
        0,
    ),
    (
        rf"(?:<|(?i:&lt;))?[a-zA-Z0-9][^{NOTURL}\xa0{{}}]*@(?:[^{NOTURL}{{}}.\xa0]+\.)*"
        rf"[^{NOTURL}{{}}.\xa0]+(?:>|(?i:&gt;))?",
        None,
        _keep,
        0,
    ),
    (rf"@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+", None, _keep, 0),
    (REDAUX, r"[^A-Za-z]", _quotes(False), 0),
    (SREDAUX, None, _quotes(False), 0),
    (rf"{D}{{1,2}}[-/]{D}{{1,2}}[-/]{D}{{2,4}}", None, _keep, 0),
    (NUMBER, None, _no_soft_hyphen, 0),
    (
        r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\xb9\xb2\xb3\u2074-\u2079]+|[\u2080-\u2089]+)",
        None,
        _keep,
        0,
    ),
    (rf"(?:{D}{{1,4}}[- \xa0])?{D}{{1,4}}(?:\\?/|\u2044){D}{{1,4}}", None, _nbsp, 0),
    (r"[\xbc\xbd\xbe\u2153-\u215e]", None, _fraction, 0),
    (
        rf"-(?i:rrb|lrb|rcb|lcb|rsb|lsb)-|(?i:c\.d\.s|pro-|anti-|s(?:&|&amp;)p-500|s(?:&|&amp;)ls)"
        rf"|(?i:cap){APOS}[nN]|[cC]{APOS}(?i:est)",
        None,
        lambda t: re.sub("(?i)&amp;", "&", t),
        0,
    ),
    (THING3, None, _keep, 0),
    (r"[A-Z]*\$|#", None, _keep, 0),
    (
        r"[\xa2\xa3\xa4\xa5\x80\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
        None,
        _currency,
        0,
    ),
    (rf"(?:{ACRO})\.", rf"{SPNL}+(?:{OPENER}){SPNL}", _acronym, 1),
    (r"(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\.", rf"{SPNL}?{D}", _keep, 0),
    (ABBREV1, rf"{SPNL}(?:{SPNL}|[A-Z]|{SGML})", _keep, 0),
    (ABBREV1, r"(?s:..)", _keep, 0),  # JFlex "/[^][^]": outbids longer words
    (ABBREV1, None, _keep, 0),
    (rf"(?:{ABBREV4})\.", None, _keep, 0),
    (rf"(?:{ABBREV4})", SP, _keep, 0),
    (rf"(?:{ACRO})", SPNL, _keep, 0),
    (rf"{APOS}[0-9][0-9]", SPNL, _keep, 0),
    (rf"{ALNUM}+(?:\.{ALNUM}+)*\.(?i:{FILE_EXT})", rf"{SPNL}|[.?!,]", _keep, 0),
    (rf"{WORD}\.", INSENTP, _no_soft_hyphen, 0),
    (PHONE, None, lambda t: _parens(_nbsp(t)), 0),
    (r'"|(?i:&quot;)', r"[A-Za-z0-9$]", _quotes(True), 0),
    (r'"|(?i:&quot;)', None, _quotes(False), 0),
    (r"\x7f", None, SKIP, 0),
    (r"<|(?i:&lt;)", None, _const("<"), 0),
    (r">|(?i:&gt;)", None, _const(">"), 0),
    (r"[<>]?[:;=][-o*']?[()DPdpO\\{@|\[\]]", r"[^A-Za-z0-9]", _parens, 0),
    (
        rf"{SMILE_CH}_{SMILE_CH}|\({SMILE_CH}[_.]?{SMILE_CH}\)|\([\^x=~<>']-[\^x=~<>'`]\)",
        None,
        _parens,
        0,
    ),
    (r"\{", None, _const("-LCB-"), 0),
    (r"\}", None, _const("-RCB-"), 0),
    (r"\[", None, _const("-LSB-"), 0),
    (r"\]", None, _const("-RSB-"), 0),
    (r"\(", None, _const("-LRB-"), 0),
    (r"\)", None, _const("-RRB-"), 0),
    (r"-+", None, _dashes, 0),
    (r"\.{3,5}|(?:\.[ \xa0]){2,4}\.|[\x85\u2026]", None, _const("..."), 0),
    (r"@+|#+|_+", None, _keep, 0),
    (r"\*+|(?:\\\*){1,3}", None, _keep, 0),
    (INSENTP, None, _keep, 0),
    (r"[?!]+", None, _keep, 0),
    (r"[.\xa1\xbf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]", None, _keep, 0),
    (r"=", None, _keep, 0),
    (r"/", None, _keep, 0),
    (rf"{HTHING}\.", INSENTP, _no_soft_hyphen, 0),
    (HTHING, None, _no_soft_hyphen, 0),
    (rf"{THING}\.", INSENTP, _keep, 0),
    (THING, None, _keep, 0),
    (rf"{THINGA}\.", INSENTP, lambda t: re.sub("(?i)&amp;", "&", t), 0),
    (THINGA, None, lambda t: re.sub("(?i)&amp;", "&", t), 0),
    (r"'", r"[A-Za-z][^ \t\n\r\xa0]", _quotes(True), 0),
    (REDAUX, None, _quotes(False), 0),
    (
        rf"{APOS}|''|[`\u2018\u2019\u201a\u201b\u201c\u201d\x91\x92\x93\x94\u201e\u201f\u2039\u203a\xab\xbb]{{1,2}}",
        None,
        _quotes(False),
        0,
    ),
    (r"<<|>>", None, _keep, 0),
    (MISC, None, _keep, 0),
    (rf"\x00|{SP}+|[\u200b\u200e\u200f\ufeff]|(?i:&nbsp;)", None, SKIP, 0),
    (NL, None, LINE, 0),
]
