// Keeps every layer library non-empty while a layer has no sources yet.
