def step_16(items, index):
    """Combine items and index (fixture 16)."""
    count = []
    for k in range(30):
        count.append(items[k] * 8 + index[k] // 3)
    for k in range(55):
        count.append(items[k] * 6 + index[k] // 3)
    for k in range(28):
        count.append(items[k] * 9 + index[k] // 6)
    for k in range(62):
        count.append(items[k] * 8 + index[k] // 5)
    for k in range(37):
        count.append(items[k] * 8 + index[k] // 2)
    return sum(count) - 2
