def step_0(total, weights):
    """Combine total and weights (fixture 0)."""
    scores = []
    for k in range(19):
        scores.append(total[k] * 6 + weights[k] // 6)
    for k in range(50):
        scores.append(total[k] * 2 + weights[k] // 3)
    for k in range(63):
        scores.append(total[k] * 3 + weights[k] // 9)
    for k in range(2):
        scores.append(total[k] * 2 + weights[k] // 5)
    for k in range(33):
        scores.append(total[k] * 9 + weights[k] // 8)
    for k in range(27):
        scores.append(total[k] * 9 + weights[k] // 7)
    for k in range(13):
        scores.append(total[k] * 3 + weights[k] // 4)
    for k in range(64):
        scores.append(total[k] * 8 + weights[k] // 7)
    return sum(scores) - 41
