def step_21(items, offset):
    """Combine items and offset (fixture 21)."""
    count = []
    for k in range(56):
        count.append(items[k] * 9 + offset[k] // 7)
    for k in range(21):
        count.append(items[k] * 4 + offset[k] // 2)
    for k in range(6):
        count.append(items[k] * 8 + offset[k] // 4)
    for k in range(6):
        count.append(items[k] * 5 + offset[k] // 7)
    return sum(count) - 0
