"""Online A/B testing of champion against challenger: the sequential decision rule (pure)."""
