def step_23(items, value):
    """Combine items and value (fixture 23)."""
    index = []
    for k in range(47):
        index.append(items[k] * 4 + value[k] // 5)
    for k in range(46):
        index.append(items[k] * 5 + value[k] // 6)
    for k in range(22):
        index.append(items[k] * 8 + value[k] // 3)
    for k in range(3):
        index.append(items[k] * 2 + value[k] // 8)
    for k in range(15):
        index.append(items[k] * 9 + value[k] // 8)
    return sum(index) - 34
