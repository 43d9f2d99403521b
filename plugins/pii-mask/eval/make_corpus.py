#!/usr/bin/env python3
"""Writes the labelled pii-mask evaluation corpus (JSONL) from a seed.

Each record is one realistic short document (support ticket, HR record,
invoice, chat log, clinic note, ...) built from templates filled by Faker
(several locales), with personal data planted at known places and hard
negatives (Luhn-invalid card-like numbers, IBANs with a wrong check digit,
SSNs in reserved ranges, order numbers, version strings, non-birth dates,
ISBNs, timestamps, amounts) mixed in. Offsets are Python `str` indices, i.e.
Unicode code points, the same unit the step reports.

Record: {"id": N, "kind": "ticket", "text": "...",
         "spans": [{"type": "EMAIL", "start": 10, "end": 27, "cued": true}],
         "negatives": ["CARD_LUHN_INVALID", ...]}
`cued` is only meaningful for PERSON: false when no title, salutation or
label points at the name (the detectors do not look for such names; they
are labelled so the report can say how many it misses).

Usage: make_corpus.py --seed 7 [--records 600] [--out corpus.jsonl]
       make_corpus.py --seed 7 --check corpus.jsonl   (exit 1 if it differs)
Needs Faker (pinned in bench/steps/requirements.txt).
"""

import argparse
import datetime
import ipaddress
import json
import random
import sys

from faker import Faker

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"]
# Country code and an example national trunk prefix for phone formats.
PHONE_COUNTRIES = {
    "en_US": ("1", None),
    "en_GB": ("44", "0"),
    "de_DE": ("49", "0"),
    "fr_FR": ("33", "0"),
    "nl_NL": ("31", "0"),
    "es_ES": ("34", None),
    "it_IT": ("39", None),
}
IBAN_COUNTRIES = ["DE", "GB", "FR", "NL", "ES", "IT", "AT", "BE", "CH", "PL", "PT", "IE", "SE", "DK", "FI", "NO"]
IBAN_LENGTHS = {
    "DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "AT": 20, "BE": 16,
    "CH": 21, "PL": 28, "PT": 25, "IE": 22, "SE": 24, "DK": 18, "FI": 18, "NO": 15,
}  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip


class Doc:
    """Builds one text while recording the spans of planted values."""

    def __init__(self):
        self.parts = []
        self.length = 0
        self.spans = []
        self.negatives = []

    def add(self, text):
        self.parts.append(text)
        self.length += len(text)

    def pii(self, kind, value, cued=True):
        span = {"type": kind, "start": self.length, "end": self.length + len(value)}
        if kind == "PERSON":
            span["cued"] = cued
        self.spans.append(span)
        self.add(value)

    def neg(self, kind, value):
        self.negatives.append(kind)
        self.add(value)

    def text(self):
        return "".join(self.parts)


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in LOCALES}
        for k, loc in enumerate(LOCALES):
            self.fakers[loc].seed_instance(seed * 1000 + k)
        self.us = self.fakers["en_US"]

    def faker(self):
        return self.fakers[self.rng.choice(LOCALES)]

    # ------------------------------------------------------------ values

    def email(self):
        f = self.faker()
        r = self.rng.random()
        if r < 0.5:
            return f.email()
        first, last = f.first_name().lower(), f.last_name().lower()
        ascii_ = lambda s: "".join(c for c in s if c.isascii() and (c.isalnum()))  # noqa: E731
        first, last = ascii_(first) or "anna", ascii_(last) or "berg"
        local = self.rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{self.rng.randint(1, 99)}",
                                 f"{first}+{self.rng.choice(['news', 'billing', 'work'])}"])  # fmt: skip
        return f"{local}@{f.domain_name()}"

    def phone(self):
        loc = self.rng.choice(LOCALES)
        cc, trunk = PHONE_COUNTRIES[loc]
        d = lambda n: "".join(str(self.rng.randint(0, 9)) for _ in range(n))  # noqa: E731
        nz = lambda: str(self.rng.randint(2, 9))  # noqa: E731
        if loc == "en_US":
            area, ex, line = nz() + d(2), nz() + d(2), d(4)
            return self.rng.choice([
                f"({area}) {ex}-{line}", f"{area}-{ex}-{line}", f"{area}.{ex}.{line}",
                f"+1 {area} {ex} {line}", f"+1 ({area}) {ex}-{line}", f"+1-{area}-{ex}-{line}",
            ])  # fmt: skip
        if loc == "en_GB":
            a, b = d(3), d(4)
            return self.rng.choice([f"+44 20 {d(4)} {b}", f"020 {d(4)} {b}", f"+44 7{d(3)} {d(6)}",
                                    f"07{d(3)} {d(6)}", f"+44 (0)1{d(2)} {a} {b}"])  # fmt: skip
        if loc == "de_DE":
            return self.rng.choice([f"+49 30 {d(8)}", f"030 {d(7)}", f"+49 (0)89 {d(3)} {d(4)}",
                                    f"+49 151 {d(8)}", f"0151 {d(8)}", f"+49{nz()}{d(10)}", f"089/{d(7)}"])  # fmt: skip
        if loc == "fr_FR":
            g = lambda: d(2)  # noqa: E731
            return self.rng.choice([f"0{self.rng.randint(1, 7)} {g()} {g()} {g()} {g()}",
                                    f"+33 {self.rng.randint(1, 7)} {g()} {g()} {g()} {g()}",
                                    f"0{self.rng.randint(1, 7)}.{g()}.{g()}.{g()}.{g()}"])  # fmt: skip
        if loc == "nl_NL":
            return self.rng.choice([f"+31 20 {d(3)} {d(4)}", f"020-{d(7)}", f"06-{d(8)}", f"+31 6 {d(8)}"])
        if loc == "es_ES":
            return self.rng.choice([f"+34 91 {d(3)} {d(2)} {d(2)}", f"+34 6{d(2)} {d(3)} {d(3)}",
                                    f"91 {d(3)} {d(2)} {d(2)}"])  # fmt: skip
        return self.rng.choice([f"+39 06 {d(4)} {d(4)}", f"+39 3{d(2)} {d(3)} {d(4)}", f"06 {d(8)}"])

    def card(self):
        kind = self.rng.choice(["visa16", "mastercard", "amex", "discover", "visa16", "mastercard", "jcb"])
        number = self.us.credit_card_number(card_type=kind)
        return self.format_card(number)

    def format_card(self, number):
        style = self.rng.random()
        if len(number) == 15:  # Amex 4-6-5
            if style < 0.6:
                return f"{number[:4]} {number[4:10]} {number[10:]}"
            return number
        if style < 0.5:
            return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        if style < 0.75:
            return "-".join(number[i : i + 4] for i in range(0, len(number), 4))
        return number

    def iban(self, valid=True):
        country = self.rng.choice(IBAN_COUNTRIES)
        length = IBAN_LENGTHS[country]
        bban = "".join(str(self.rng.randint(0, 9)) for _ in range(length - 4))
        if country in ("GB", "IE", "NL"):
            bank = "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
            bban = bank + bban[4:]
        check = 98 - int(iban_numeric(country + "00" + bban)) % 97
        if not valid:
            check = (check + self.rng.randint(1, 96) - 2) % 97 + 2
            if check == 98 - int(iban_numeric(country + "00" + bban)) % 97:
                check = check % 97 + 2
        compact = f"{country}{check:02d}{bban}"
        if self.rng.random() < 0.6:
            return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        return compact

    def ssn(self):
        return self.us.ssn()

    def ipv4(self):
        return self.us.ipv4_public() if self.rng.random() < 0.6 else self.us.ipv4_private()

    def ipv6(self):
        addr = ipaddress.IPv6Address(self.us.ipv6())
        if self.rng.random() < 0.3:
            # Give the compressed form something to compress.
            parts = addr.exploded.split(":")
            k = self.rng.randint(2, 5)
            parts[k] = parts[k + 1] = "0000"
            addr = ipaddress.IPv6Address(":".join(parts))
            return addr.compressed
        return addr.exploded if self.rng.random() < 0.3 else str(addr)

    def date(self, start=1940, end=2005):
        y = self.rng.randint(start, end)
        m = self.rng.randint(1, 12)
        d = self.rng.randint(1, 28)
        return datetime.date(y, m, d)

    def fmt_date(self, dt):
        return self.rng.choice([
            dt.strftime("%Y-%m-%d"), dt.strftime("%d.%m.%Y"), dt.strftime("%m/%d/%Y"), dt.strftime("%d/%m/%Y"),
            f"{MONTHS[dt.month - 1]} {dt.day}, {dt.year}", f"{dt.day} {MONTHS[dt.month - 1]} {dt.year}",
            f"{dt.day} {MONTHS[dt.month - 1][:3]} {dt.year}",
        ])  # fmt: skip

    def name(self, with_middle=False):
        f = self.faker()
        first, last = f.first_name(), f.last_name()
        return f"{first} {last}"

    # ------------------------------------------------------------ negatives

    def luhn_invalid(self):
        number = self.us.credit_card_number(card_type=self.rng.choice(["visa16", "mastercard"]))
        last = (int(number[-1]) + self.rng.randint(1, 9)) % 10
        return self.format_card(number[:-1] + str(last))

    def bad_ssn(self):
        area = self.rng.choice(["000", "666", str(self.rng.randint(900, 999))])
        return f"{area}-{self.rng.randint(1, 99):02d}-{self.rng.randint(1, 9999):04d}"

    def order_number(self):
        d = lambda n: "".join(str(self.rng.randint(0, 9)) for _ in range(n))  # noqa: E731
        return self.rng.choice([f"#{d(6)}", f"ORD-{d(8)}", f"A-{2020 + self.rng.randint(0, 6)}-{d(6)}",
                                f"INV{d(7)}", f"{d(5)}", f"PO {d(4)}-{d(3)}"])  # fmt: skip

    def version(self):
        r = self.rng.randint
        return self.rng.choice([f"v{r(1, 12)}.{r(0, 30)}.{r(0, 99)}", f"{r(1, 9)}.{r(0, 20)}.{r(0, 9)}",
                                f"10.0.{r(10000, 22999)}.{r(1000, 9999)}", f"{r(1, 4)}.{r(0, 9)}.{r(0, 9)}-rc{r(1, 5)}"])  # fmt: skip

    def isbn(self):
        return self.us.isbn13()

    def amount(self):
        return self.rng.choice([f"${self.rng.randint(1, 99999):,}.{self.rng.randint(0, 99):02d}",
                                f"{self.rng.randint(1, 9999)},{self.rng.randint(0, 99):02d} EUR",
                                f"£{self.rng.randint(1, 9999)}.{self.rng.randint(0, 99):02d}"])  # fmt: skip

    def timestamp(self):
        dt = self.date(2019, 2026)
        return f"{dt.isoformat()} {self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}:{self.rng.randint(0, 59):02d}"

    def tracking(self):
        d = lambda n: "".join(str(self.rng.randint(0, 9)) for _ in range(n))  # noqa: E731
        return self.rng.choice([f"1Z{d(16)}", f"{d(12)}", f"JJD{d(18)}"])

    def sentence(self):
        return self.us.sentence(nb_words=self.rng.randint(6, 14))

    def company(self):
        return self.faker().company()


def iban_numeric(s):
    moved = s[4:] + s[:4]
    return "".join(str(int(c, 36)) for c in moved)


# ------------------------------------------------------------------ templates
# Each template writes one document into `d` using generator `g`.


def support_ticket(d, g):
    n = g.name()
    d.add(g.rng.choice(["Hi ", "Hello ", "Dear "]))
    d.pii("PERSON", n, cued=True)
    d.add(",\n\n" + g.sentence() + " Your ticket number is ")
    d.neg("ORDER_NUMBER", g.order_number())
    d.add(". Our records show the account e-mail ")
    d.pii("EMAIL", g.email())
    d.add(" and the phone number ")
    d.pii("PHONE", g.phone())
    d.add(". " + g.sentence() + " The app version ")
    d.neg("VERSION", g.version())
    d.add(" was released on ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2019, 2026)))
    d.add(".\n\nBest regards,\n")
    d.pii("PERSON", g.name(), cued=True)
    d.add("\n" + g.company() + " Support")


def hr_record(d, g):
    d.add("EMPLOYEE RECORD\nName: ")
    d.pii("PERSON", g.name(), cued=True)
    d.add("\nDate of birth: ")
    d.pii("DATE_OF_BIRTH", g.fmt_date(g.date()))
    d.add("\nSSN: ")
    d.pii("US_SSN", g.ssn())
    d.add("\nStart date: ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2010, 2026)))
    d.add("\nPersonal e-mail: ")
    d.pii("EMAIL", g.email())
    d.add("\nMobile: ")
    d.pii("PHONE", g.phone())
    d.add("\nSalary account (IBAN): ")
    d.pii("IBAN", g.iban())
    d.add("\nEmployee no.: ")
    d.neg("ORDER_NUMBER", g.order_number())
    d.add("\nNotes: " + g.sentence())


def invoice(d, g):
    d.add(f"Invoice {g.rng.randint(1000, 99999)} from {g.company()}\nInvoice date: ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2018, 2026)))
    d.add("\nBill to: Mr. " if g.rng.random() < 0.5 else "\nBill to: Ms. ")
    d.pii("PERSON", g.name(), cued=True)
    d.add("\nTotal due: ")
    d.neg("AMOUNT", g.amount())
    d.add("\nPlease transfer the amount to ")
    d.pii("IBAN", g.iban())
    d.add(" quoting reference ")
    d.neg("ORDER_NUMBER", g.order_number())
    d.add(". The previous payment was declined for card number ")
    d.neg("CARD_LUHN_INVALID", g.luhn_invalid())
    d.add(", so we charged the card on file, ")
    d.pii("CREDIT_CARD", g.card())
    d.add(", instead. Questions: ")
    d.pii("EMAIL", g.email())
    d.add(". Tracking: ")
    d.neg("TRACKING", g.tracking())
    d.add(".")


def payment_chat(d, g):
    d.add(f"[{g.timestamp()}] agent: " + g.sentence() + "\n")
    d.add(f"[{g.timestamp()}] customer: sure, my card is ")
    d.pii("CREDIT_CARD", g.card())
    d.add(" and the backup one is ")
    d.pii("CREDIT_CARD", g.card())
    d.add("\n")
    d.add(f"[{g.timestamp()}] agent: thanks! The number ")
    d.neg("CARD_LUHN_INVALID", g.luhn_invalid())
    d.add(" on your old order did not validate. Refunds go to IBAN ")
    d.pii("IBAN", g.iban())
    d.add(", right? The old IBAN ")
    d.neg("IBAN_BAD_CHECKSUM", g.iban(valid=False))
    d.add(" bounced.\n")
    d.add(f"[{g.timestamp()}] customer: yes. call me at ")
    d.pii("PHONE", g.phone())
    d.add(" if needed\n")


def security_log(d, g):
    d.add(f"{g.timestamp()} WARN login failure for user ")
    d.pii("EMAIL", g.email())
    d.add(" from ")
    d.pii("IP_ADDRESS", g.ipv4())
    d.add(f" (client {g.version()})\n")
    d.add(f"{g.timestamp()} INFO session opened from ")
    d.pii("IP_ADDRESS", g.ipv6())
    d.add(" after 3 attempts; build ")
    d.neg("VERSION", g.version())
    d.add("\n")
    d.add(f"{g.timestamp()} INFO request id ")
    d.neg("ORDER_NUMBER", g.order_number())
    d.add(" took 245 ms, upstream ")
    d.pii("IP_ADDRESS", g.ipv4())
    d.add(f":{g.rng.randint(1024, 65535)}\n")
    d.add(f"{g.timestamp()} DEBUG " + g.sentence() + "\n")


def clinic_note(d, g):
    d.add("Patient: ")
    d.pii("PERSON", g.name(), cued=True)
    d.add(g.rng.choice([", born on ", ", DOB ", " (date of birth: "]))
    dob = g.fmt_date(g.date())
    d.pii("DATE_OF_BIRTH", dob)
    if d.parts[-2].endswith("birth: "):
        d.add(")")
    d.add(". Seen on ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2020, 2026)))
    d.add(" by Dr. ")
    d.pii("PERSON", g.name(), cued=True)
    d.add(". " + g.sentence() + " Follow-up on ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2024, 2027)))
    d.add(". Contact number on file: ")
    d.pii("PHONE", g.phone())
    d.add(". Insurance SSN ")
    d.pii("US_SSN", g.ssn())
    d.add("; the form listed ")
    d.neg("SSN_INVALID_RANGE", g.bad_ssn())
    d.add(", which is not a valid number.")


def newsletter(d, g):
    # Mostly near misses: no personal data except a contact address and an
    # uncued name (which the detectors do not look for).
    d.add(g.company() + " release notes\n\nVersion ")
    d.neg("VERSION", g.version())
    d.add(" is out. " + g.sentence() + " See ISBN ")
    d.neg("ISBN", g.isbn())
    d.add(" for the handbook. Prices start at ")
    d.neg("AMOUNT", g.amount())
    d.add(". The webinar on ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2024, 2027)))
    d.add(" is hosted by ")
    d.pii("PERSON", g.name(), cued=False)
    d.add(". Server maintenance at ")
    d.neg("TIMESTAMP", g.timestamp())
    d.add(". Order ")
    d.neg("ORDER_NUMBER", g.order_number())
    d.add(" shipped with tracking ")
    d.neg("TRACKING", g.tracking())
    d.add(". Write to ")
    d.pii("EMAIL", g.email())
    d.add(" with feedback. " + g.sentence())


def form_letter(d, g):
    d.add("Dear ")
    title = g.rng.choice(["Mr. ", "Mrs. ", "Ms. ", "Dr. ", "Prof. "])
    d.add(title)
    d.pii("PERSON", g.name(), cued=True)
    d.add(",\n\n" + g.sentence() + " We received your application with SSN ")
    d.pii("US_SSN", g.ssn())
    d.add(" on ")
    d.neg("DATE_NOT_DOB", g.fmt_date(g.date(2022, 2026)))
    d.add(". Your birth date is ")
    d.pii("DATE_OF_BIRTH", g.fmt_date(g.date()))
    d.add(". " + g.sentence() + " Payments will be made to ")
    d.pii("IBAN", g.iban())
    d.add(". " + g.sentence() + "\n\nSincerely,\n")
    d.pii("PERSON", g.name(), cued=True)


TEMPLATES = [support_ticket, hr_record, invoice, payment_chat, security_log, clinic_note, newsletter, form_letter]


def make(seed, records):
    g = Gen(seed)
    out = []
    for i in range(records):
        d = Doc()
        TEMPLATES[i % len(TEMPLATES)](d, g)
        out.append({"id": i, "kind": TEMPLATES[i % len(TEMPLATES)].__name__, "text": d.text(), "spans": d.spans,
                    "negatives": d.negatives})  # fmt: skip
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--records", type=int, default=640)
    ap.add_argument("--out", default="-")
    ap.add_argument("--check", metavar="FILE", help="exit 1 unless FILE is what this seed generates")
    args = ap.parse_args()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in make(args.seed, args.records))
    if args.check:
        with open(args.check, encoding="utf-8") as f:
            same = f.read() == lines
        print(f"{args.check}: {'matches' if same else 'DIFFERS from'} seed {args.seed}", file=sys.stderr)
        sys.exit(0 if same else 1)
    if args.out == "-":
        sys.stdout.write(lines)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(lines)


if __name__ == "__main__":
    main()
