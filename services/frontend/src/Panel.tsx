import { useQuery } from "@tanstack/react-query";
import { getJson, type PanelInfo, type SeriesAnswer } from "./api";
import { Chart } from "./Chart";
import { formatValue, latest, unavailableText } from "./format";

type ViewProps = { info: PanelInfo; answer: SeriesAnswer | undefined; error: Error | null };

/** A panel's view of one answer: the chart and each series' latest value (data-metric). */
export function PanelView({ info, answer, error }: ViewProps) {
  let body;
  if (error) {
    body = <p className="unavailable" data-state="error">{error.message}</p>;
  } else if (!answer) {
    body = <p className="muted" data-state="loading">loading…</p>;
  } else if (!answer.available) {
    body = (
      <p className="unavailable" data-state="unavailable" data-metric={`${info.name}/unavailable_since`}>
        {unavailableText(answer.unavailable_since, answer.error)}
      </p>
    );
  } else {
    body = (
      <>
        {typeof ResizeObserver !== "undefined" && answer.series.length > 0 ? (
          <Chart title={info.title} unit={answer.unit} series={answer.series}
            start={answer.start} end={answer.end} step={answer.step} />
        ) : null}
        {answer.series.length === 0 ? <p className="muted" data-state="empty">no data in the last {answer.minutes} min</p> : null}
        <ul className="legend">
          {answer.series.map((s) => {
            const v = latest(s.points);
            return (
              <li key={s.metric}>
                {s.label}: <b data-metric={s.metric} data-value={v ?? ""}>{formatValue(v, answer.unit)}</b>
              </li>
            );
          })}
        </ul>
      </>
    );
  }
  return (
    <article className="panel" data-panel={info.name} aria-labelledby={`t-${info.name}`}>
      <h4 id={`t-${info.name}`}>{info.title}</h4>
      {body}
    </article>
  );
}

/** A panel that asks /api/series every `refresh` seconds for the last `minutes`. */
export function Panel({ info, minutes, refresh }: { info: PanelInfo; minutes: number; refresh: number }) {
  const q = useQuery({
    queryKey: ["series", info.name, minutes],
    queryFn: () =>
      getJson<SeriesAnswer>(`/api/series?panel=${encodeURIComponent(info.name)}&minutes=${minutes}`),
    refetchInterval: refresh * 1000,
  });
  return <PanelView info={info} answer={q.data} error={q.error} />;
}
