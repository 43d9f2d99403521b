#!/usr/bin/env python3
"""Writes labelled.jsonl from the hand-written sentences below.

Entities are marked inline as {TYPE|value}; the script strips the markers and
records char offsets (Python str indices are code points, like the step's).
Run: python3 tests/make_labelled.py > tests/labelled.jsonl
"""
import json, re

SENTENCES = [
    "Please reply to {EMAIL|maria.gonzalez@example.com} before Friday.",
    "You can reach our customer {EMAIL|j.smith+billing@mail.example.org} or the front desk.",
    "Call me on {PHONE|+44 20 7946 0958} after 5 pm.",
    "Our office number is {PHONE|(555) 123-4567}, ask for extension 12.",
    "The landline {PHONE|030 1234567} is only staffed in the morning.",
    "Text {PHONE|+4915112345678} if the door is locked.",
    "Fax: {PHONE|555-123-4567}",
    "Payment was made with card {CREDIT_CARD|4111 1111 1111 1111} on 3 March.",
    "Her Mastercard {CREDIT_CARD|5555-5555-5555-4444} was declined twice.",
    "Amex {CREDIT_CARD|378282246310005} expires next year.",
    "Transfer the deposit to {IBAN|DE89 3704 0044 0532 0130 00} by the end of the month.",
    "The UK account is {IBAN|GB82 WEST 1234 5698 7654 32}.",
    "Refunds go to {IBAN|NL91ABNA0417164300} within 14 days.",
    "His SSN is {US_SSN|536-22-1234} according to the form.",
    "Applicant SSN: {US_SSN|078-05-1120}.",
    "The login came from {IP_ADDRESS|192.168.1.10} at 10:30:45.",
    "Blocked traffic from {IP_ADDRESS|2001:db8::8a2e:370:7334} and {IP_ADDRESS|203.0.113.7}.",
    "DOB: {DATE_OF_BIRTH|17.05.1990}",
    "Patient date of birth {DATE_OF_BIRTH|1985-11-02}, allergies none.",
    "She was born on {DATE_OF_BIRTH|May 17, 1990} in Lisbon.",
    "Geburtsdatum: {DATE_OF_BIRTH|3. März 1985}",
    "Dear {PERSON|Anna Berg}, thank you for your order.",
    "Please forward this to Dr. {PERSON|Rahul Mehta} in cardiology.",
    "Name: {PERSON|Carlos Mendes}\nEmail: {EMAIL|c.mendes@example.net}",
    "For billing questions contact {PERSON|Laura Schmidt} at {EMAIL|billing@example.com}.",
    "Mrs {PERSON|O'Connor} called about invoice 88231 from 2023.",
    "Best regards,\n{PERSON|Tomás Ferreira}",
    "Prof. {PERSON|Ingrid Larsen} will chair the session in room 4.",
    # sentences without personal data (near misses)
    "Revenue grew 12% in 2024 to $1,299,000.",
    "The meeting on 2024-01-15 was moved to 12.03.2024.",
    "Version 10.2.3 fixes the crash reported in ticket #4821.",
    "The card number 4111 1111 1111 1112 failed the checksum.",
    "IBAN DE89 3704 0044 0532 0130 01 has a typo.",
    "Test value 000-12-3456 is not a real SSN.",
    "The address 999.1.1.1 is not valid IPv4.",
    "Dear Customer, your parcel is on its way.",
    "Population reached 1.234.567 in the 1990-2000 decade.",
    "Orders shipped: 15230, returned: 412, pending: 98.",
    "Prices start at 19.99 EUR and rise to 1299.00 EUR.",
    "Our support address {EMAIL|help@example.com} is monitored around the clock.",
    "Between 9:00 and 17:30 call {PHONE|+1 (415) 555-2671} or write to Mr. {PERSON|Daniel Okafor}.",
    "Born: {DATE_OF_BIRTH|12/04/1978}; SSN {US_SSN|219-09-9999}; card {CREDIT_CARD|6011 1111 1111 1117}.",
]

MARK = re.compile(r"\{([A-Z_]+)\|([^}]*)\}")

for s in SENTENCES:
    text, spans, pos, last = "", [], 0, 0
    for m in MARK.finditer(s):
        text += s[last:m.start()]
        start = len(text)
        text += m.group(2)
        spans.append({"type": m.group(1), "start": start, "end": len(text)})
        last = m.end()
    text += s[last:]
    print(json.dumps({"text": text, "spans": spans}, ensure_ascii=False))
