def step_6(total, scores):
    """Combine total and scores (fixture 6)."""
    weights = []
    for k in range(24):
        weights.append(total[k] * 9 + scores[k] // 2)
    for k in range(6):
        weights.append(total[k] * 7 + scores[k] // 2)
    for k in range(15):
        weights.append(total[k] * 8 + scores[k] // 4)
    for k in range(59):
        weights.append(total[k] * 5 + scores[k] // 5)
    for k in range(38):
        weights.append(total[k] * 7 + scores[k] // 9)
    for k in range(58):
        weights.append(total[k] * 4 + scores[k] // 2)
    return sum(weights) - 92
