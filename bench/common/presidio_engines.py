"""Presidio restricted to its pattern recognizers for the entity types `pii-mask` handles, over a
blank spaCy English pipeline (no model download): the one setup both Python peers use
(bench/e2e/peer.py in the Celery pipeline, bench/steps/peers.py in the step-level comparison)."""


def presidio_engines():
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        DateRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )
    from presidio_anonymizer import AnonymizerEngine

    class BlankSpacyEngine(SpacyNlpEngine):
        """Presidio's spaCy engine over a blank English pipeline (no model download)."""

        def __init__(self):
            super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

        def load(self):
            self.nlp = {"en": spacy.blank("en")}

    nlp = BlankSpacyEngine()
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    # Phone regions: the corpus holds US, GB, DE, FR, NL, ES and IT numbers.
    phone = PhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "NL", "ES", "IT"))
    for recognizer in (EmailRecognizer(), phone, CreditCardRecognizer(), IbanRecognizer(), UsSsnRecognizer(),
                       IpRecognizer(), DateRecognizer()):  # fmt: skip
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    return analyzer, AnonymizerEngine()
