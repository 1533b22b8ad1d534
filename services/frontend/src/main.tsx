import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import "./styles.css";

// Keep the last answer on screen while the next one loads; no retry storm when the API is
// gone (the next 2 s refresh is the retry).
const client = new QueryClient({
  defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false, placeholderData: (prev: unknown) => prev } },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={client}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
