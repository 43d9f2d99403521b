use super::*;

fn found(text: &str, entity: Entity) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    resolve_overlaps(detect_all(&chars, &Entity::ALL))
        .into_iter()
        .filter(|s| s.entity == entity)
        .map(|s| chars[s.start..s.end].iter().collect())
        .collect()
}

fn all(text: &str) -> Vec<(Entity, String)> {
    let chars: Vec<char> = text.chars().collect();
    resolve_overlaps(detect_all(&chars, &Entity::ALL))
        .into_iter()
        .map(|s| (s.entity, chars[s.start..s.end].iter().collect()))
        .collect()
}

#[test]
fn emails_found() {
    assert_eq!(found("Write to jane.doe+tag@example.co.uk.", Entity::Email), ["jane.doe+tag@example.co.uk"]);
    assert_eq!(found("a@b.io and ops-team@mail.example.com", Entity::Email), ["a@b.io", "ops-team@mail.example.com"]);
    assert_eq!(found("(müller@beispiel.de)", Entity::Email), ["müller@beispiel.de"]);
}

#[test]
fn email_near_misses() {
    assert!(found("user@localhost", Entity::Email).is_empty());
    assert!(found("follow @handle on social", Entity::Email).is_empty());
    assert!(found("x@y.1", Entity::Email).is_empty());
    assert!(found("price 5 @ 3.50", Entity::Email).is_empty());
}

#[test]
fn phones_found() {
    for p in [
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "030 1234567",
        "+4915112345678",
        "+1 (415) 555-2671",
        "06 12 34 56 78",
        "+49 (0)30 1234567",
        "555.123.4567",
    ] {
        let text = format!("Call {p} today.");
        assert_eq!(found(&text, Entity::Phone), [p], "{text}");
    }
    assert_eq!(found("call me (555-1234)", Entity::Phone), ["555-1234"]);
}

#[test]
fn phone_near_misses() {
    for t in [
        "In 2024 we grew.",
        "It costs $1,299.99 now.",
        "It costs 1299.00 EUR.",
        "Invoice 12345678 is due.",
        "Order #555-123-4567 shipped.",
        "Due on 2024-01-15.",
        "From 12.03.2024 on.",
        "Between 1990-2000 things changed.",
        "Population 1.234.567 people.",
        "Version 10.2.3 released.",
        "Room 12, floor 3.",
    ] {
        assert!(found(t, Entity::Phone).is_empty(), "{t}: {:?}", all(t));
    }
}

#[test]
fn luhn() {
    let d = |s: &str| s.chars().filter_map(|c| c.to_digit(10)).collect::<Vec<_>>();
    assert!(luhn_valid(&d("4111111111111111")));
    assert!(luhn_valid(&d("79927398713")));
    assert!(!luhn_valid(&d("4111111111111112")));
}

#[test]
fn credit_cards_found() {
    assert_eq!(found("Card 4111 1111 1111 1111 exp 12/27", Entity::CreditCard), ["4111 1111 1111 1111"]);
    assert_eq!(found("5555-5555-5555-4444.", Entity::CreditCard), ["5555-5555-5555-4444"]);
    assert_eq!(found("amex 378282246310005", Entity::CreditCard), ["378282246310005"]);
    assert_eq!(found("4111 1111 1111 1111 2024", Entity::CreditCard), ["4111 1111 1111 1111"]);
}

#[test]
fn credit_card_near_misses() {
    assert!(found("Card 4111 1111 1111 1112", Entity::CreditCard).is_empty());
    assert!(found("ref 8111111111111111111111", Entity::CreditCard).is_empty());
    assert!(found("IBAN DE89 3704 0044 0532 0130 01", Entity::CreditCard).is_empty(), "not card-shaped groups");
    assert_eq!(found("diners 3056 930902 5904", Entity::CreditCard), ["3056 930902 5904"]);
    assert!(found("tracking 1111111111111117", Entity::CreditCard).is_empty(), "prefix 1 is no card network");
    // an invalid card is not reported as something else either
    assert!(all("Card 4111 1111 1111 1112").is_empty());
}

#[test]
fn ibans_found() {
    for iban in [
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "NL91ABNA0417164300",
        "FR14 2004 1010 0505 0001 3M02 606",
        "BE68539007547034",
    ] {
        let text = format!("IBAN: {iban}, thanks");
        assert_eq!(found(&text, Entity::Iban), [iban], "{text}");
    }
}

#[test]
fn iban_near_misses() {
    assert!(found("IBAN DE89 3704 0044 0532 0130 01", Entity::Iban).is_empty(), "bad checksum");
    assert!(found("IBAN DE89 3704 0044 0532 0130", Entity::Iban).is_empty(), "too short for DE");
    assert!(found("IBAN XX89 3704 0044 0532 0130 00", Entity::Iban).is_empty(), "unknown country");
    assert!(iban_checksum_valid(&"DE89370400440532013000".chars().collect::<Vec<_>>()));
    assert!(!iban_checksum_valid(&"DE88370400440532013000".chars().collect::<Vec<_>>()));
}

#[test]
fn ssns_found() {
    assert_eq!(found("SSN 536-22-1234.", Entity::UsSsn), ["536-22-1234"]);
    assert_eq!(found("ssn:078-05-1120", Entity::UsSsn), ["078-05-1120"]);
}

#[test]
fn ssn_near_misses() {
    for t in ["SSN 000-12-3456", "SSN 666-12-3456", "SSN 912-34-5678", "SSN 123-00-4567", "SSN 123-45-0000"] {
        assert!(found(t, Entity::UsSsn).is_empty(), "{t}");
        assert!(all(t).is_empty(), "{t} must not fall back to another type: {:?}", all(t));
    }
    for t in ["id 1536-22-1234", "536-22-12345", "5536-22-1234"] {
        assert!(found(t, Entity::UsSsn).is_empty(), "{t}");
    }
}

#[test]
fn ip_addresses_found() {
    assert_eq!(found("from 192.168.1.10.", Entity::IpAddress), ["192.168.1.10"]);
    assert_eq!(found("host 8.8.8.8:53", Entity::IpAddress), ["8.8.8.8"]);
    assert_eq!(found("v6 2001:db8::8a2e:370:7334 ok", Entity::IpAddress), ["2001:db8::8a2e:370:7334"]);
    assert_eq!(found("loopback ::1.", Entity::IpAddress), ["::1"]);
    assert_eq!(
        found("fe80::1 and 2001:0db8:0000:0000:0000:ff00:0042:8329", Entity::IpAddress),
        ["fe80::1", "2001:0db8:0000:0000:0000:ff00:0042:8329"]
    );
    assert_eq!(found("mapped ::ffff:192.0.2.128", Entity::IpAddress), ["::ffff:192.0.2.128"]);
}

#[test]
fn ip_near_misses() {
    for t in ["bad 999.1.1.1", "bad 256.1.1.1", "only 1.2.3", "at 10:30:45", "ratio 1:2", "v1.2.3.4.5", "word::other"] {
        assert!(found(t, Entity::IpAddress).is_empty(), "{t}: {:?}", all(t));
    }
}

#[test]
fn dates_of_birth_found() {
    assert_eq!(found("DOB: 17.05.1990", Entity::DateOfBirth), ["17.05.1990"]);
    assert_eq!(found("Date of birth 1990-05-17;", Entity::DateOfBirth), ["1990-05-17"]);
    assert_eq!(found("she was born on May 17, 1990 in Rome", Entity::DateOfBirth), ["May 17, 1990"]);
    assert_eq!(found("Geburtsdatum: 3. März 1985", Entity::DateOfBirth), ["3. März 1985"]);
    assert_eq!(found("born 3rd of June 1985", Entity::DateOfBirth), ["3rd of June 1985"]);
    assert_eq!(found("d.o.b. 05/17/90", Entity::DateOfBirth), ["05/17/90"]);
}

#[test]
fn unlabelled_dates_are_kept() {
    assert!(all("Meeting on 17.05.2024 and May 3, 2024.").is_empty());
    assert!(found("DOB unknown, updated 2024", Entity::DateOfBirth).is_empty());
}

#[test]
fn persons_found() {
    assert_eq!(found("Please ask Dr. Jane Smith.", Entity::Person), ["Jane Smith"]);
    assert_eq!(found("Mrs O'Brien called", Entity::Person), ["O'Brien"]);
    assert_eq!(found("Dear Anna-Lena Berg,\nthanks", Entity::Person), ["Anna-Lena Berg"]);
    assert_eq!(found("Name: Ludwig van Beethoven\n", Entity::Person), ["Ludwig van Beethoven"]);
    assert_eq!(found("please contact John Miller at the desk", Entity::Person), ["John Miller"]);
    assert_eq!(found("Best regards,\nÉmile Zola", Entity::Person), ["Émile Zola"]);
    assert_eq!(found("Hi Tom, see you", Entity::Person), ["Tom"]);
    assert_eq!(found("Dear Mr. J. Doe", Entity::Person), ["J. Doe"]);
}

#[test]
fn person_near_misses() {
    for t in [
        "Dear Customer, hello",
        "Dear Sir or Madam",
        "Hi there",
        "The Name of the Rose",
        "contact Support at 9am",
        "Mr. and Mrs. are titles",
        "Dr. no",
    ] {
        assert!(found(t, Entity::Person).is_empty(), "{t}: {:?}", all(t));
    }
}

#[test]
fn overlaps_keep_longest_then_most_specific() {
    let spans = vec![
        Span { entity: Entity::Phone, start: 0, end: 11 },
        Span { entity: Entity::UsSsn, start: 0, end: 11 },
        Span { entity: Entity::Person, start: 5, end: 20 },
        Span { entity: Entity::Email, start: 21, end: 30 },
    ];
    let kept = resolve_overlaps(spans);
    assert_eq!(
        kept,
        vec![Span { entity: Entity::Person, start: 5, end: 20 }, Span { entity: Entity::Email, start: 21, end: 30 }]
    );
    let kept = resolve_overlaps(vec![
        Span { entity: Entity::Phone, start: 0, end: 11 },
        Span { entity: Entity::UsSsn, start: 0, end: 11 },
    ]);
    assert_eq!(kept[0].entity, Entity::UsSsn);
}

#[test]
fn offsets_are_chars_not_bytes() {
    let text = "Grüße — schreib an jörg@example.de ✉";
    let chars: Vec<char> = text.chars().collect();
    let spans = emails(&chars);
    assert_eq!(spans.len(), 1);
    let start = text.chars().take_while(|&c| c != 'j').count();
    assert_eq!((spans[0].start, spans[0].end), (start, start + "jörg@example.de".chars().count()));
}

// Regressions found by the generated corpus (eval/corpus.jsonl).

#[test]
fn timestamp_is_not_a_phone() {
    let t = "[2025-09-05 17:09:33] agent: hello";
    assert!(found(t, Entity::Phone).is_empty(), "{:?}", all(t));
    assert!(found("at 05.09.2025 17:09 sharp", Entity::Phone).is_empty());
}

#[test]
fn version_with_one_digit_group_is_not_a_phone() {
    let t = "The app version 10.0.16909.1642 was released.";
    assert!(found(t, Entity::Phone).is_empty(), "{:?}", all(t));
    // dotted phone numbers keep working
    assert_eq!(found("Call 555.123.4567 now.", Entity::Phone), ["555.123.4567"]);
    assert_eq!(found("Appelez le 01.23.45.67.89 svp", Entity::Phone), ["01.23.45.67.89"]);
}

#[test]
fn four_three_reference_is_not_a_phone() {
    let t = "Your ticket number is PO 6281-948.";
    assert!(found(t, Entity::Phone).is_empty(), "{:?}", all(t));
    assert_eq!(found("call me (555-1234)", Entity::Phone), ["555-1234"]);
}

#[test]
fn isbn_is_not_a_phone() {
    for t in ["See ISBN 978-3-16-148410-0 for the handbook.", "ISBN 979-1-23456-789-6."] {
        assert!(found(t, Entity::Phone).is_empty(), "{t}: {:?}", all(t));
    }
    // 13 digits starting 978 without a valid ISBN check digit may be a phone
    assert_eq!(found("Call +978 316 148 410 1 today", Entity::Phone), ["+978 316 148 410 1"]);
}

#[test]
fn tail_of_an_invalid_iban_is_not_a_phone() {
    for t in [
        "The old IBAN BE32 8483 7261 6751 bounced.",
        "The old IBAN GB71 OQRZ 1878 0175 9898 35 bounced.",
        "Pay DE12 3704 0044 0532 0130 00 today.",
    ] {
        assert!(found(t, Entity::Phone).is_empty(), "{t}: {:?}", all(t));
    }
    assert_eq!(found("Ring ABCD 020 7946 0958 now", Entity::Phone), ["020 7946 0958"]);
}

#[test]
fn names_with_several_particles() {
    assert_eq!(found("Seen by Dr. Bradley van der Kint today.", Entity::Person), ["Bradley van der Kint"]);
    assert_eq!(found("Dear Ms. Azra van der Brink,", Entity::Person), ["Azra van der Brink"]);
    assert_eq!(found("Name: Lot van der Plas\n", Entity::Person), ["Lot van der Plas"]);
}

#[test]
fn tail_of_an_invalid_iban_is_not_a_card() {
    // `5920756936789` + `0` passes Luhn, but it is the account part of an IBAN with a wrong check digit.
    let t = "The old IBAN FI16 5920 7569 3678 90 bounced.";
    assert!(luhn_valid(&[5, 9, 2, 0, 7, 5, 6, 9, 3, 6, 7, 8, 9, 0]));
    assert!(found(t, Entity::CreditCard).is_empty(), "{:?}", all(t));
    assert_eq!(found("card 4111 1111 1111 1111 on file", Entity::CreditCard), ["4111 1111 1111 1111"]);
}

#[test]
fn case_insensitive_cues_ascii_and_not() {
    let t: Vec<char> = "DATE OF BIRTH Geburtsdatum GRÜSSE Grüße".chars().collect();
    assert!(matches_ci(&t, 0, "date of birth"));
    assert!(matches_ci(&t, 14, "geburtsdatum"));
    assert!(matches_ci(&t, 34, "grüße"));
    assert!(!matches_ci(&t, 0, "date of birthday"));
    assert!(!matches_ci(&t, 14, "geburtstag"));
}

#[test]
fn cue_lists_are_ascii() {
    // dates_of_birth and persons measure these cues in bytes.
    assert!(DOB_LABELS.iter().chain(TITLES).all(|l| l.is_ascii()));
}

/// Every record of the labelled corpora.
fn corpus_texts() -> Vec<String> {
    let lines =
        include_str!("../../eval/corpus.jsonl").lines().chain(include_str!("../../tests/labelled.jsonl").lines());
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => v["text"].as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("corpus line: {e}"),
        })
        .collect()
}

/// The raw detections of the current scanners and of [`reference`] (the
/// scanners before the speed work), each sorted the same way.
fn both(text: &str) -> (Vec<Span>, Vec<Span>) {
    let chars: Vec<char> = text.chars().collect();
    let key = |s: &Span| (s.start, s.end, s.entity);
    let mut new = detect_all(&chars, &Entity::ALL);
    let mut old = reference::detect_all(&chars, &Entity::ALL);
    new.sort_by_key(key);
    old.sort_by_key(key);
    (new, old)
}

/// The text masked with tags as the step did before the speed work: the
/// reference detections, overlaps resolved, spliced char by char.
fn masked_before(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut pos = 0;
    for s in resolve_overlaps(reference::detect_all(&chars, &Entity::ALL)) {
        out.extend(&chars[pos..s.start]);
        out.push_str(&format!("[{}]", s.entity));
        pos = s.end;
    }
    out.extend(&chars[pos..]);
    out
}

/// Asserts that the scanners find, and the step masks, exactly what they
/// did before the speed work.
fn assert_same_as_before(text: &str, context: &str) {
    let (new, old) = both(text);
    assert_eq!(new, old, "{context}: {text:?}");
    let masked = crate::mask::mask_text(text, &crate::mask::Config::default()).text;
    assert_eq!(masked, masked_before(text), "{context}: {text:?}");
}

#[test]
fn same_detections_as_before_on_the_corpora() {
    let texts = corpus_texts();
    assert!(texts.len() > 600);
    for (k, text) in texts.iter().enumerate() {
        assert_same_as_before(text, &format!("record {k}"));
    }
}

/// Pieces that sit on the scanners' edges: cues in odd cases, chars that
/// lower-case to ASCII (the Kelvin sign) or to two chars, separators,
/// checksummed numbers and near misses.
const TRICKY: &[&str] = &[
    "Dr. ",
    "dEAR ",
    "Hi ",
    "hallo ",
    "Name: ",
    "signed by ",
    "Contact ",
    " at ",
    "Regards,\n",
    "GRÜSSE,",
    "grüße, ",
    "Thanks,",
    "THAN\u{212a}S, ",
    "O\u{212a}T",
    "\u{212a}",
    "\u{130}",
    "\u{1e9e}",
    "\u{1c5}",
    "\u{a0}",
    "–",
    "’",
    "ß",
    "Mr ",
    "Mrs. ",
    "Prof ",
    "van der ",
    "de la ",
    "O'Brien",
    "Anne-Marie",
    "J. ",
    "ACME ",
    "Customer ",
    "date of birth: ",
    "DOB ",
    "d.o.b. ",
    "geb. ",
    "born on ",
    "Geburtsdatum: ",
    "is ",
    "was ",
    "17 May 1990",
    "3rd of June 1985",
    "May 17, 1990",
    "17. März 1990",
    "17.05.1990",
    "1990-05-17",
    "05/17/90",
    "@",
    "a@b.io",
    "x.y@mail.example.com",
    "-",
    ".",
    ":",
    "::",
    "/",
    "(",
    ")",
    "+",
    "+44 20 7946 0958",
    "(555) 123-4567",
    "555-123-4567",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "378282246310005",
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "GB82 WEST ",
    "123-45-6789",
    "078-05-1120",
    "192.168.0.1",
    "10.0.19045.2965",
    "fe80::1",
    "2001:db8::8a2e:370:7334",
    "::ffff:1.2.3.4",
    "978-3-16-148410-0",
    "2025-09-05 17:09:33",
    "1999-2004",
    "1.234.567",
    "#",
    "$",
    "€",
    "_",
    "0",
    "7",
    "12",
    "345",
    " ",
    " ",
    " ",
    "\n",
    "\t",
    ", ",
    "a",
    "B",
    "ab",
    "Zz",
    "é",
    "É",
];

/// A small deterministic generator (xorshift64*), so a failure can be
/// replayed from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn same_detections_as_before_on_spliced_random_texts() {
    let texts = corpus_texts();
    let texts: Vec<Vec<char>> = texts.iter().map(|t| t.chars().collect()).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..5000 {
        let mut text = String::new();
        for _ in 0..1 + rng.below(12) {
            if rng.below(3) == 0 {
                text.push_str(TRICKY[rng.below(TRICKY.len())]);
            } else {
                // A window of a corpus record, sometimes case-flipped.
                let source = &texts[rng.below(texts.len())];
                let start = rng.below(source.len());
                let end = (start + 1 + rng.below(40)).min(source.len());
                let window = source[start..end].iter();
                match rng.below(6) {
                    0 => text.extend(window.flat_map(|c| c.to_uppercase())),
                    1 => text.extend(window.flat_map(|c| c.to_lowercase())),
                    _ => text.extend(window),
                }
            }
        }
        assert_same_as_before(&text, &format!("round {round}"));
    }
}
