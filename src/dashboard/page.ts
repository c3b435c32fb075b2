/** The dashboard: one self-contained page (HTML, CSS and script), served at `/`. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ferry</title></head>
<body><h1>Ferry</h1><p>The dashboard is being built.</p></body></html>
`;
