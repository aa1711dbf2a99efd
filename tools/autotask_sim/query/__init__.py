"""The REST query surface: filter grammar, ``IncludeFields`` projection, pages and tokens."""
