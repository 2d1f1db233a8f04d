"""Lexer rules for `captioner.metrics_ptb`, transcribing Stanford PTBLexer (CoreNLP 3.4.1).

Each rule is (token regex, trailing-context regex or None, action, chars pushed back). The
engine takes the longest match counting the trailing context, earlier rules winning ties,
as JFlex does. Inside `(?i:...)` literal letters are caseless; character classes never
are (JFlex `%caseless` semantics). Actions map the matched text to the emitted token, or
are SKIP (whitespace, deleted characters) / LINE (a caption ends).
The rule set was checked token for token against the 3.4.1 jar on ~150k fuzzed lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# --- building blocks (the JFlex macros); literal words are caseless, classes are not ---
L = r"\p{L}\u00ad\u0300-\u036f"  # WORD letters: [:letter:] plus soft hyphen, combining accents
SP = r"[ \t\u00a0\u2000-\u200a\u3000]"
NL = r"(?:\r\n|[\r\n\u2028\u2029\x0b\x0c\x85])"
SPNL = f"(?:{SP}|{NL})"
LETTER = rf"(?:[{L}]|&[aeiouAEIOU](?i:acute|grave|uml);)"
ALNUM = r"[\p{L}\d]"  # THING-style words: no soft hyphen or bare accents
WORD = rf"{LETTER}(?:{LETTER}|\d)*(?:[.!?]{LETTER}(?:{LETTER}|\d)*)*"
APOS = r"(?:['\x92\u2019]|&apos;)"
APOSX = rf"(?:{APOS}|[`\x91\u2018\u201b])"
REDAUX = rf"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SWORD = r"[A-Za-z\xad]*[A-MO-Za-mo-z]\xad*"
SREDAUX = rf"[nN]{APOSX}[tT]"
APOWORD = (
    rf"{APOS}[nN]{APOS}?|[lLdDjJ]{APOS}|(?i:dunkin|somethin|ol){APOS}|{APOS}(?i:em)"
    rf"|[A-HJ-XZn]{APOSX}\p{{L}}{{2,}}|{APOS}[2-9]0[sS]|{APOS}(?i:till?)"
    rf"|\p{{L}}+[aeiouyAEIOUY]{APOSX}[aeiouA-Z]\p{{L}}*|{APOS}(?i:cause)"
    rf"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)|(?i:o){APOSX}(?i:o)"
)
NUM = r"\d*(?:[.:,\xad\u066b\u066c]\d+)+|\d+"
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
    table = {"\xbc": "1/4", "\xbd": "1/2", "\xbe": "3/4", "\u2153": "1/3"}
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
    (r"[yY]" + APOS, r"\p{L}", _keep, 0),
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
    (r"\d{1,2}[-/]\d{1,2}[-/]\d{2,4}", None, _keep, 0),
    (NUMBER, None, _no_soft_hyphen, 0),
    (
        r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\xb9\xb2\xb3\u2074-\u2079]+|[\u2080-\u2089]+)",
        None,
        _keep,
        0,
    ),
    (r"(?:\d{1,4}[- \xa0])?\d{1,4}(?:\\?/|\u2044)\d{1,4}", None, _nbsp, 0),
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
    (r"(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\.", rf"{SPNL}?\d", _keep, 0),
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
