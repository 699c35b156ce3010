"""Layer 3: presentation. Number formats, the tables of a results document, the live console
display behind the Reporter interface, and plots. Nothing here measures or decides."""
