"""Personal data in raw text → typed placeholders (`[EMAIL]`, `[PHONE]`, …), before tokenization.

`scrub(text)` finds e-mail addresses, URLs, IP addresses (v4 and v6), phone numbers
(international `+CC …`, North American, Chinese mobile and landline), Chinese resident ID
numbers, payment card numbers and IBANs, and replaces each with its kind's placeholder; it
returns the scrubbed text and one span per replacement, with offsets in the text it was given.
`plmkit prepare scrub_pii=true` runs it on every document; `plmkit scrub` writes scrubbed copies.

Each kind is a pattern that proposes candidates and a validator that keeps or refuses them: the
check digits that a random number fails (Luhn for cards, ISO 7064 MOD 11-2 for Chinese IDs,
mod 97 for IBANs, with each country's IBAN length), a real birth date and province code for an
ID, octets ≤ 255 for IPv4, the `ipaddress` parser for IPv6, the number plans of the phones.
Patterns look at the neighbouring characters instead of using `\\b`, which counts a Chinese
character as a word character: "电话13812345678联系" holds a phone, "订单2024120412345678" none.
Matching runs on an NFKC view of the text, so full-width digits and `＠` match like ASCII; an
offset map, built only when NFKC changes something, takes every span back to the raw text.

The choice and its cost: our own recognizers, written for these kinds in English and Chinese
text (Presidio needs a downloaded spaCy model and has no Chinese recognizers); they find what
has a format, never names or street addresses, which would need a trained tagger. North
American numbers need separators (212-555-0123, (212) 555-0123) or +1: ten bare digits are as
often an order number. URLs need a scheme or `www.` and end at the first non-ASCII character.
A dotted quad with no three-digit octet counts as an IPv4 address only after a network word
(IP, server, 地址, …): "SB 6.1.1.1" and "versions 5.2.5.9" are sections and versions. 13-digit
Visa numbers (no longer issued) are left alone: EAN-13 barcodes pass Luhn one time in ten.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

PLACEHOLDERS = {  # kind → placeholder; the order is the tie-break when two kinds claim one span
    "url": "[URL]",
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "id_cn": "[ID_CN]",
    "card": "[CARD]",
    "phone": "[PHONE]",
    "ip": "[IP]",
}
KINDS = tuple(PLACEHOLDERS)


class PiiSpan(NamedTuple):
    """One replacement: the kind, its [start, end) in the raw text, and the placeholder put there."""

    kind: str
    start: int
    end: int
    placeholder: str


# ----------------------------------------------------------------------------- validators


def luhn_valid(digits: str) -> bool:
    """The Luhn check of payment cards: doubling every second digit from the right, sum % 10 == 0."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(17-i) mod 11
_ID_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: check character for (Σ digit × weight) mod 11
# The first two digits: provinces, municipalities, autonomous regions; 71 Taiwan, 81 Hong Kong,
# 82 Macau, 83 the residence permits of Taiwan residents.
_ID_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)


def id_cn_valid(number: str) -> bool:
    """An 18-character resident ID: province code, a real birth date, and the MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    if number[:2] not in _ID_PROVINCES or number[2:4] == "00":
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not datetime.date(1900, 1, 1) <= born <= datetime.date.today():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return number[17].upper() == _ID_CHECK[total % 11]


# Every country of the SWIFT IBAN registry: its IBAN length.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LY": 25, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_valid(compact: str) -> bool:
    """An IBAN without spaces: a known country, its length, and ISO 7064 mod 97 == 1."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]  # letters count as 10..35 (int(c, 36))
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_brand_ok(digits: str) -> bool:
    """The issuer prefix and length of a card network (Visa, Mastercard, Amex, UnionPay, …)."""
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":  # Visa (not the 13 digits of old cards: as long as an EAN-13 barcode)
        return n in (16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if two in (36, 38, 39) or 3000 <= four <= 3059:  # Diners Club
        return 14 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if two in (60, 62, 65) or 644 <= four // 10 <= 649:  # UnionPay, Discover, RuPay
        return 16 <= n <= 19
    if two in (50, 56, 57, 58) or four in (6304, 6759, 6761, 6762, 6763):  # Maestro
        return 13 <= n <= 19
    return False  # 69…: the GS1 prefix of Chinese barcodes, which pass Luhn one time in ten


# ----------------------------------------------------------------------------- recognizers

_START = r"(?<![0-9A-Za-z])(?<![0-9]\.)"  # not inside a word, a code or a decimal number
_END = r"(?![0-9A-Za-z])(?!\.[0-9])"
_NETWORK_WORDS = re.compile(
    r"\b(?:ip|ipv4|address(?:es)?|addr|server|host|dns|resolver|nameserver|gateway|router|proxy|ping|subnet|"
    r"netmask|vpn|ssh|connect(?:ed|s)?|log(?:ged)?\s*in|login|lan|wan|wi-?fi)\b|"
    r"地址|服务器|伺服器|网关|閘道|主机|主機|登录|登入|访问|訪問|连接|連接|内网|內網|网络|網路|路由",
    re.IGNORECASE,
)
_VERSION_BEFORE = re.compile(
    r"(?<![A-Za-z])(?:version|ver\.?|release|build|rev\.?|section|sec\.|§|chapter|版本号?|版|第|章节?)\s*[:#(]?\s*$",
    re.IGNORECASE,
)
_ENTITY_END = re.compile(r"&(?:gt|lt|quot|apos);?$")  # an HTML-escaped bracket after a URL


def _whole(view: str, m: re.Match[str]) -> int | None:
    return m.end()


def _url_end(view: str, m: re.Match[str]) -> int | None:
    """Drop trailing punctuation, closing brackets the URL did not open, and the remains of an
    HTML-escaped bracket after it ("…/page&gt;")."""
    end = m.end()
    while end > m.start():
        ch = view[end - 1]
        opener = {")": "(", "]": "[", "}": "{"}.get(ch)
        if opener and view.count(opener, m.start(), end) >= view.count(ch, m.start(), end):
            break
        entity = _ENTITY_END.search(view, m.start(), end)
        if entity:
            end = entity.start()
            continue
        if not opener and ch not in ".,;:!?'*([{":
            break
        end -= 1
    host = re.match(r"(?:[a-z]+://|www\.)[0-9A-Za-z]", view[m.start() : end], re.IGNORECASE)
    return end if host else None


def _ipv4(view: str, m: re.Match[str]) -> int | None:
    """Four octets: an address when one octet has three digits or the words before speak of
    networks; "SB 6.1.1.1" (a verse) and "versions 5.2.5.9" are section and version numbers."""
    if _VERSION_BEFORE.search(view[max(0, m.start() - 16) : m.start()]):
        return None
    if any(len(octet) == 3 for octet in m.group().split(".")):
        return m.end()
    return m.end() if _NETWORK_WORDS.search(view[max(0, m.start() - 48) : m.start()]) else None


def _ipv6(view: str, m: re.Match[str]) -> int | None:
    text = m.group()
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    groups = [g for g in re.split(r"[:.]", text) if g]
    return m.end() if len(groups) >= 2 else None  # "::" and "::1" say nothing about anyone


def _intl_phone(view: str, m: re.Match[str]) -> int | None:
    """`+CC` and groups: keep the longest run of groups with 8–15 digits (E.164's limit)."""
    text, digits, best = m.group(), 0, None
    for group in re.finditer(r"[0-9]+\)?", text):  # a group's closing bracket stays with it
        digits += len(group.group().rstrip(")"))
        if digits > 15:
            break
        if digits >= 8:
            best = m.start() + group.end()
    if best is None or re.match(r"[0-9A-Za-z]", view[best : best + 1]):
        return None
    return best


def _card(view: str, m: re.Match[str]) -> int | None:
    digits = re.sub(r"[ -]", "", m.group())
    return m.end() if _card_brand_ok(digits) and luhn_valid(digits) else None


def _id_cn(view: str, m: re.Match[str]) -> int | None:
    return m.end() if id_cn_valid(m.group()) else None


def _iban(view: str, m: re.Match[str]) -> int | None:
    """Take the country's length of characters, spaced in fours if at all, and check mod 97."""
    length = _IBAN_LENGTHS.get(m.group()[:2])
    if length is None:
        return None
    kept, i = 0, m.start()
    while kept < length and i < m.end():
        if view[i] == " ":
            if kept % 4:
                return None
        else:
            kept += 1
        i += 1
    compact = view[m.start() : i].replace(" ", "")
    if kept < length or re.match(r"[0-9A-Za-z]", view[i : i + 1]) or not iban_valid(compact):
        return None
    return i


class Recognizer(NamedTuple):
    """One kind of PII: a pattern proposing candidates, a validator returning the end it keeps
    (None: refused), and a hint every candidate contains. Python's regex engine cannot skip
    ahead to a pattern that opens with a lookbehind, so the hint, which opens with a plain
    character, is searched first and the pattern runs only on text that has one (2–3× faster
    on Wikipedia text)."""

    kind: str
    pattern: re.Pattern[str]
    accept: Callable[[str, re.Match[str]], int | None]
    hint: re.Pattern[str]


def _recognizer(kind: str, pattern: str, accept: Callable, hint: str, flags: int = 0) -> Recognizer:
    return Recognizer(kind, re.compile(pattern, flags), accept, re.compile(hint, flags))


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CN_MOBILE = r"1(?:3[0-9]|4[5-9]|5[0-35-9]|6[2567]|7[0-8]|8[0-9]|9[0-35-9])"  # allotted prefixes
_NA_AREA = r"[2-9][0-8][0-9]"

RECOGNIZERS: tuple[Recognizer, ...] = (
    _recognizer("url", r"(?<![0-9A-Za-z@.])(?:(?:https?|ftp)://|www\.)[!#-;=?-~]+", _url_end,
                r"://|www\.", re.IGNORECASE),
    _recognizer("email", r"(?<![0-9A-Za-z._%+-])[0-9A-Za-z][0-9A-Za-z._%+-]*@"
                r"(?:[0-9A-Za-z](?:[0-9A-Za-z-]*[0-9A-Za-z])?\.)+[A-Za-z]{2,24}(?![0-9A-Za-z-])",
                _whole, r"@"),
    _recognizer("iban", r"(?:(?<![0-9A-Za-z])|(?<=IBAN))[A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]){11,30}",
                _iban, r"[A-Z]{2}[0-9]{2}"),
    _recognizer("id_cn", _START + r"[1-9][0-9]{16}[0-9Xx]" + _END, _id_cn, r"[0-9]{17}"),
    _recognizer("card", _START + r"(?:[0-9]{13,19}"
                r"|[0-9]{4}(?P<c4>[ -])[0-9]{4}(?P=c4)[0-9]{4}(?P=c4)[0-9]{1,4}(?:(?P=c4)[0-9]{1,3})?"
                r"|[0-9]{4}(?P<c6>[ -])[0-9]{6}(?P=c6)[0-9]{4,5})" + _END, _card,
                r"[0-9]{4}[ -]?[0-9]{4}"),
    _recognizer("phone",  # international: +CC then groups
                r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,3}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,6})){1,7}",
                _intl_phone, r"\+[1-9]"),
    _recognizer("phone",  # North American: (212) 555-0123, 212-555-0123, 1-800-555-0199
                _START + r"(?:\(" + _NA_AREA + r"\) ?[2-9][0-9]{2}[ .-]|(?:1-)?" + _NA_AREA
                + r"(?P<na>[.-])[2-9][0-9]{2}(?P=na))[0-9]{4}" + _END, _whole,
                r"[0-9]{3}[).-] ?[0-9]{3}[ .-][0-9]{4}"),
    _recognizer("phone",  # Chinese mobile: 13812345678, 138-1234-5678, +86 138 1234 5678
                _START + r"(?:(?:\+|00)86[ -]?)?" + _CN_MOBILE
                + r"(?:[0-9]{8}|(?P<cm>[ -])[0-9]{4}(?P=cm)[0-9]{4})" + _END, _whole,
                r"1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}"),
    _recognizer("phone",  # Chinese landline: 010-12345678, (0755)12345678, 0571 88881234
                _START + r"(?:\(0(?:10|2[0-9]|[3-9][0-9]{2})\)[ -]?|0(?:10|2[0-9]|[3-9][0-9]{2})[ -])"
                r"[2-9][0-9]{6,7}" + _END, _whole, r"0[1-9][0-9]{1,2}[) -]"),
    _recognizer("ip", r"(?:(?<![0-9A-Za-z.])|(?<=IP)|(?<=ip))(?:" + _OCTET + r"\.){3}" + _OCTET
                + r"(?![0-9A-Za-z]|\.[0-9A-Za-z])", _ipv4, r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]"),
    _recognizer("ip", r"(?<![0-9A-Za-z:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
                r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z:]|\.[0-9])", _ipv6,
                r":[0-9A-Fa-f]{0,4}:"),
)


# ----------------------------------------------------------------------------- scrubbing


# Characters NFKC leaves as they are, one by one: ASCII, CJK ideographs, kana, Hangul syllables.
# Only the others are normalised in Python; runs of these are copied with their offsets at once.
_UNSTABLE = re.compile(r"[^\x00-\x7f\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3]+")


def _nfkc_view(raw: str) -> tuple[str, list[int] | None]:
    """The NFKC form matched on, and for each of its characters the raw index it came from
    (None when NFKC changes nothing, the common case: offsets are then the same)."""
    if raw.isascii() or unicodedata.is_normalized("NFKC", raw):
        return raw, None
    pieces: list[str] = []
    origin: list[int] = []
    at = 0
    for run in _UNSTABLE.finditer(raw):
        pieces.append(raw[at : run.start()])
        origin.extend(range(at, run.start()))
        for i in range(run.start(), run.end()):  # per character: each view character has one source
            norm = unicodedata.normalize("NFKC", raw[i])
            pieces.append(norm)
            origin.extend([i] * len(norm))
        at = run.end()
    pieces.append(raw[at:])
    origin.extend(range(at, len(raw)))
    return "".join(pieces), origin


def find_pii(raw: str) -> list[PiiSpan]:
    """Every PII span of `raw`, in order, never overlapping (the longest wins, then KINDS' order)."""
    view, origin = _nfkc_view(raw)
    found = []
    for rec in RECOGNIZERS:
        if not rec.hint.search(view):
            continue
        for m in rec.pattern.finditer(view):
            end = rec.accept(view, m)
            if end is not None and end > m.start():
                found.append((m.start(), end, KINDS.index(rec.kind), rec.kind))
    found.sort(key=lambda f: (f[0], f[0] - f[1], f[2]))
    spans: list[PiiSpan] = []
    taken = 0
    for start, end, _, kind in found:
        if start < taken:
            continue
        taken = end
        if origin is not None:
            start, end = origin[start], origin[end - 1] + 1
        spans.append(PiiSpan(kind, start, end, PLACEHOLDERS[kind]))
    return spans


def scrub(raw: str) -> tuple[str, list[PiiSpan]]:
    """`raw` with every PII span replaced by its placeholder, and the spans (offsets in `raw`)."""
    spans = find_pii(raw)
    if not spans:
        return raw, spans
    pieces, at = [], 0
    for span in spans:
        pieces += [raw[at : span.start], span.placeholder]
        at = span.end
    pieces.append(raw[at:])
    return "".join(pieces), spans


def count_kinds(spans: list[PiiSpan]) -> dict[str, int]:
    """How many spans of each kind, every kind listed (zeros included), in KINDS' order."""
    counts = dict.fromkeys(KINDS, 0)
    for span in spans:
        counts[span.kind] += 1
    return counts
