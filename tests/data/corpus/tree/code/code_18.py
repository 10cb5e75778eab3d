def step_18(scores, index):
    """Combine scores and index (fixture 18)."""
    value = []
    for k in range(41):
        value.append(scores[k] * 8 + index[k] // 7)
    for k in range(59):
        value.append(scores[k] * 3 + index[k] // 6)
    for k in range(42):
        value.append(scores[k] * 4 + index[k] // 3)
    for k in range(31):
        value.append(scores[k] * 9 + index[k] // 6)
    for k in range(43):
        value.append(scores[k] * 9 + index[k] // 3)
    return sum(value) - 25
