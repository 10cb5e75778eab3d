def step_17(total, value):
    """Combine total and value (fixture 17)."""
    scores = []
    for k in range(4):
        scores.append(total[k] * 9 + value[k] // 2)
    for k in range(31):
        scores.append(total[k] * 2 + value[k] // 2)
    for k in range(12):
        scores.append(total[k] * 7 + value[k] // 5)
    for k in range(21):
        scores.append(total[k] * 8 + value[k] // 4)
    for k in range(47):
        scores.append(total[k] * 4 + value[k] // 4)
    return sum(scores) - 75
