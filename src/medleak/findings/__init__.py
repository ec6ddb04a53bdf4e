"""Analysis of a store against published claims: per finding its claim, criterion, outcome and
explanation, computed from the stored numbers (the report only lays them out)."""
