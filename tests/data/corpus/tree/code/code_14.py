def step_14(weights, offset):
    """Combine weights and offset (fixture 14)."""
    value = []
    for k in range(22):
        value.append(weights[k] * 2 + offset[k] // 7)
    for k in range(27):
        value.append(weights[k] * 5 + offset[k] // 9)
    for k in range(17):
        value.append(weights[k] * 5 + offset[k] // 9)
    for k in range(37):
        value.append(weights[k] * 7 + offset[k] // 8)
    for k in range(2):
        value.append(weights[k] * 6 + offset[k] // 4)
    return sum(value) - 58
