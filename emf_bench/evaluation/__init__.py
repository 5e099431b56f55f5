"""GenEval and DPG-Bench evaluation: prompt loading, image layouts, scoring rules, backends."""
