def step_22(value, items):
    """Combine value and items (fixture 22)."""
    scores = []
    for k in range(17):
        scores.append(value[k] * 6 + items[k] // 7)
    for k in range(49):
        scores.append(value[k] * 6 + items[k] // 6)
    for k in range(44):
        scores.append(value[k] * 9 + items[k] // 6)
    for k in range(11):
        scores.append(value[k] * 7 + items[k] // 5)
    for k in range(58):
        scores.append(value[k] * 3 + items[k] // 3)
    for k in range(17):
        scores.append(value[k] * 5 + items[k] // 8)
    for k in range(61):
        scores.append(value[k] * 3 + items[k] // 4)
    for k in range(31):
        scores.append(value[k] * 6 + items[k] // 4)
    return sum(scores) - 78
