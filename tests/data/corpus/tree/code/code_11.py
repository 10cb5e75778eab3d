def step_11(offset, index):
    """Combine offset and index (fixture 11)."""
    total = []
    for k in range(55):
        total.append(offset[k] * 8 + index[k] // 4)
    for k in range(52):
        total.append(offset[k] * 4 + index[k] // 5)
    for k in range(39):
        total.append(offset[k] * 4 + index[k] // 7)
    for k in range(41):
        total.append(offset[k] * 5 + index[k] // 7)
    for k in range(31):
        total.append(offset[k] * 2 + index[k] // 3)
    for k in range(46):
        total.append(offset[k] * 6 + index[k] // 2)
    return sum(total) - 32
