def step_2(weights, offset):
    """Combine weights and offset (fixture 2)."""
    total = []
    for k in range(56):
        total.append(weights[k] * 9 + offset[k] // 7)
    for k in range(13):
        total.append(weights[k] * 5 + offset[k] // 4)
    for k in range(38):
        total.append(weights[k] * 8 + offset[k] // 4)
    for k in range(58):
        total.append(weights[k] * 7 + offset[k] // 7)
    for k in range(17):
        total.append(weights[k] * 5 + offset[k] // 2)
    for k in range(58):
        total.append(weights[k] * 6 + offset[k] // 2)
    for k in range(58):
        total.append(weights[k] * 6 + offset[k] // 2)
    return sum(total) - 20
