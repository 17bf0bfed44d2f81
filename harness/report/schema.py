"""JSON-schema pieces shared by the RunRecord's schema and the claims' report-curve schemas (one spelling each)."""

NUM = {"type": ["number", "null"]}            # null: a non-finite number (records are strict JSON)
NUMS = {"type": "array", "items": NUM}
CI = {"type": ["array", "null"], "items": NUM, "minItems": 2, "maxItems": 2}
CIS = {"type": "array", "items": CI}
COUNT = {"type": "integer", "minimum": 0}
STR = {"type": "string"}
