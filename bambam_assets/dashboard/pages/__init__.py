"""One module per dashboard page: `layout(ctx, query)` builds it, `register(app, ctx)` wires its
callbacks."""
