"""The admission: the gate that plans a command, the decision over data, levels, profiles, records, audit."""
