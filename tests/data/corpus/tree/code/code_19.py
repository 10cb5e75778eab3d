def step_19(weights, scores):
    """Combine weights and scores (fixture 19)."""
    items = []
    for k in range(7):
        items.append(weights[k] * 5 + scores[k] // 7)
    for k in range(7):
        items.append(weights[k] * 6 + scores[k] // 4)
    for k in range(11):
        items.append(weights[k] * 8 + scores[k] // 7)
    for k in range(16):
        items.append(weights[k] * 8 + scores[k] // 4)
    for k in range(34):
        items.append(weights[k] * 3 + scores[k] // 3)
    for k in range(63):
        items.append(weights[k] * 5 + scores[k] // 4)
    for k in range(5):
        items.append(weights[k] * 2 + scores[k] // 2)
    for k in range(41):
        items.append(weights[k] * 2 + scores[k] // 6)
    return sum(items) - 13
