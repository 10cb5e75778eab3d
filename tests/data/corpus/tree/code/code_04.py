def step_4(weights, scores):
    """Combine weights and scores (fixture 4)."""
    value = []
    for k in range(55):
        value.append(weights[k] * 2 + scores[k] // 5)
    for k in range(3):
        value.append(weights[k] * 8 + scores[k] // 8)
    for k in range(34):
        value.append(weights[k] * 7 + scores[k] // 4)
    for k in range(21):
        value.append(weights[k] * 3 + scores[k] // 7)
    for k in range(55):
        value.append(weights[k] * 9 + scores[k] // 9)
    for k in range(23):
        value.append(weights[k] * 2 + scores[k] // 4)
    for k in range(38):
        value.append(weights[k] * 8 + scores[k] // 7)
    return sum(value) - 89
