"""Writes sample.pdf: a small two-page PDF made for Weft's examples and tests.

Standard library only; run `python3 make_sample_pdf.py` to regenerate it.
The text is invented (the e-mail address and phone number are fictitious).
"""

PAGES = [
    [
        "Weft sample document",
        "",
        "Quarterly operations report for the Northwind logistics team.",
        "Shipments grew by twelve percent compared with the previous quarter.",
        "The new routing service cut average delivery time to 2.4 days.",
        "Questions go to Jane Doe at jane.doe@example.com or +44 20 7946 0958.",
    ],
    [
        "Risks and next steps",
        "",
        "Fuel prices remain the largest risk to margins in the coming months.",
        "The team will renegotiate two carrier contracts before the summer.",
        "A pilot of electric vans starts in the northern depots in April.",
        "This page closes the sample; nothing here is real.",
    ],
]


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def content_stream(lines: list[str]) -> bytes:
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for line in lines:
        ops.append(f"({escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def build() -> bytes:
    objects: list[bytes] = []
    page_ids = []
    first_page = 4
    for i, _ in enumerate(PAGES):
        page_ids.append(first_page + 2 * i)
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(PAGES)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(PAGES):
        content_id = first_page + 2 * i + 1
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            ).encode()
        )
        stream = content_stream(lines)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info_id = len(objects) + 1
    objects.append(b"<< /Title (Weft sample document) /Author (Weft) /Producer (make_sample_pdf.py) >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info_id,
        xref,
    )
    return bytes(out)


if __name__ == "__main__":
    import pathlib

    pathlib.Path(__file__).with_name("sample.pdf").write_bytes(build())
