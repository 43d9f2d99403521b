"""Native tests of the tagging logic: `python3 -m unittest discover plugins/keyword-tagger`."""

import unittest

import tagger


class TaggerTests(unittest.TestCase):
    def test_keywords_skip_stop_words_numbers_and_masked_values(self):
        text = "Shipments grew. Shipments of parcels grew again in 2024; contact [EMAIL] about the shipments."
        meta = dict(tagger.tag(text, tagger.Config(top=2)))
        self.assertEqual(meta["keywords"], "shipments,grew")
        self.assertNotIn("email", tagger.tokens(text))

    def test_language_is_detected_from_stop_words(self):
        self.assertEqual(tagger.language(tagger.tokens("The team will renegotiate two of the contracts")), "en")
        self.assertEqual(tagger.language(tagger.tokens("Die Sendungen sind im Quartal und nicht gesunken")), "de")
        self.assertEqual(tagger.language(tagger.tokens("Les envois sont dans le rapport et pour la suite")), "fr")
        self.assertEqual(tagger.language(tagger.tokens("Quarterly operations")), "und")

    def test_config_is_checked(self):
        self.assertEqual(tagger.Config.from_json("{}").top, 5)
        with self.assertRaisesRegex(tagger.ConfigError, "unknown config field `topp`"):
            tagger.Config.from_json('{"topp": 3}')
        with self.assertRaisesRegex(tagger.ConfigError, "`top` must be a whole number from 1 to 50"):
            tagger.Config.from_json('{"top": 0}')
        with self.assertRaisesRegex(tagger.ConfigError, "not valid JSON"):
            tagger.Config.from_json("{")


if __name__ == "__main__":
    unittest.main()
