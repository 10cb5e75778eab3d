def step_12(value, items):
    """Combine value and items (fixture 12)."""
    count = []
    for k in range(3):
        count.append(value[k] * 7 + items[k] // 7)
    for k in range(47):
        count.append(value[k] * 5 + items[k] // 8)
    for k in range(38):
        count.append(value[k] * 4 + items[k] // 4)
    for k in range(64):
        count.append(value[k] * 2 + items[k] // 7)
    for k in range(24):
        count.append(value[k] * 9 + items[k] // 5)
    for k in range(17):
        count.append(value[k] * 9 + items[k] // 3)
    for k in range(21):
        count.append(value[k] * 4 + items[k] // 4)
    for k in range(7):
        count.append(value[k] * 5 + items[k] // 3)
    for k in range(43):
        count.append(value[k] * 8 + items[k] // 3)
    return sum(count) - 9
