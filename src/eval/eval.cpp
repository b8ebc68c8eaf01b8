#include <cwcl/error.h>
#include <cwcl/eval/eval.h>
#include <cwcl/seeds.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <unordered_set>

namespace cwcl {

ClassificationResult zero_shot_classify(const torch::Tensor& inputs, const torch::Tensor& classes,
                                        const torch::Tensor& targets, int64_t k) {
  TORCH_CHECK(inputs.dim() == 2 && classes.dim() == 2 && inputs.size(1) == classes.size(1),
              "zero_shot_classify: inputs ", inputs.sizes(), " and classes ", classes.sizes(),
              " must be [N, D] and [C, D]");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == inputs.size(0), "zero_shot_classify: targets ",
              targets.sizes(), " for ", inputs.size(0), " inputs");
  const int64_t n = inputs.size(0), c = classes.size(0);
  TORCH_CHECK(n > 0 && c > 0, "zero_shot_classify: nothing to classify");
  auto t = targets.to(torch::kLong).cpu();
  TORCH_CHECK(t.min().item<int64_t>() >= 0 && t.max().item<int64_t>() < c,
              "zero_shot_classify: a target is outside [0, ", c, ")");
  namespace F = torch::nn::functional;
  auto norm = F::NormalizeFuncOptions().dim(1);
  auto sim = torch::mm(F::normalize(inputs.to(torch::kFloat), norm),
                       F::normalize(classes.to(torch::kFloat), norm).t()).cpu();
  auto top = std::get<1>(sim.topk(std::min(k, c), 1));
  auto hit_k = top.eq(t.unsqueeze(1)).any(1);
  auto pred = top.select(1, 0).contiguous();
  ClassificationResult r;
  r.n = n;
  r.top1 = pred.eq(t).to(torch::kDouble).mean().item<double>();
  r.top5 = hit_k.to(torch::kDouble).mean().item<double>();
  r.predictions.assign(pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + n);
  r.confusion = torch::zeros({c, c}, torch::kLong);
  r.confusion.index_put_({t, pred}, torch::ones({n}, torch::kLong), /*accumulate=*/true);
  auto correct = r.confusion.diagonal().to(torch::kDouble), total = r.confusion.sum(1).to(torch::kDouble);
  for (int64_t i = 0; i < c; ++i)
    r.per_class_accuracy.push_back(total[i].item<double>() > 0
                                       ? correct[i].item<double>() / total[i].item<double>()
                                       : std::numeric_limits<double>::quiet_NaN());
  return r;
}

torch::Tensor class_embeddings(const std::function<torch::Tensor(const std::vector<std::string>&)>& encode,
                               const std::vector<std::string>& label_texts,
                               const std::vector<std::string>& templates, int64_t k) {
  TORCH_CHECK(!label_texts.empty(), "class_embeddings: no labels");
  std::vector<std::string> used(templates.begin(),
                                templates.begin() + static_cast<long>(k > 0 && k < static_cast<int64_t>(templates.size())
                                                                          ? static_cast<size_t>(k)
                                                                          : templates.size()));
  if (used.empty()) used.push_back("{}");
  std::vector<std::string> texts;
  for (const auto& label : label_texts)
    for (const auto& t : used) {
      const auto at = t.find("{}");
      texts.push_back(at == std::string::npos ? t : t.substr(0, at) + label + t.substr(at + 2));
    }
  namespace F = torch::nn::functional;
  auto norm = F::NormalizeFuncOptions().dim(-1);
  auto e = F::normalize(encode(texts).to(torch::kFloat), norm);
  const int64_t c = static_cast<int64_t>(label_texts.size());
  return F::normalize(e.view({c, static_cast<int64_t>(used.size()), -1}).mean(1), norm);
}

namespace {

// [R, groups]: each row's best score among the columns of each group
// (`group` [C] numbers the groups 0..groups-1). One pass per member rank: the
// first member of every group, then the second, ... (scatter_reduce's amax
// would do it in one call, but prints a beta warning on every evaluation).
torch::Tensor best_per_group(const torch::Tensor& sim, const torch::Tensor& group) {
  const auto counts = torch::bincount(group);
  const auto [sorted, order] = group.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  const auto starts = counts.cumsum(0) - counts;
  auto member_rank = torch::empty_like(group);
  member_rank.index_put_({order}, torch::arange(group.size(0), torch::kLong) - starts.index_select(0, sorted));
  auto best = torch::full({sim.size(0), counts.size(0)}, -std::numeric_limits<float>::infinity());
  for (int64_t r = 0, most = counts.max().item<int64_t>(); r < most; ++r) {
    const auto columns = member_rank.eq(r).nonzero().squeeze(1);
    const auto their_groups = group.index_select(0, columns);
    best.index_copy_(1, their_groups,
                     torch::maximum(best.index_select(1, their_groups), sim.index_select(1, columns)));
  }
  return best;
}

}  // namespace

RetrievalResult retrieval(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& group) {
  TORCH_CHECK(a.dim() == 2 && a.sizes() == b.sizes() && a.size(0) > 0, "retrieval: a ", a.sizes(), " and b ",
              b.sizes(), " must be the same [N, D]");
  const int64_t n = a.size(0);
  auto g = group.defined() ? group.to(torch::kLong) : torch::arange(n, torch::kLong);
  TORCH_CHECK(g.dim() == 1 && g.size(0) == n, "retrieval: group must be [N]");
  namespace F = torch::nn::functional;
  auto norm = F::NormalizeFuncOptions().dim(1);
  auto sim = torch::mm(F::normalize(a.to(torch::kFloat), norm), F::normalize(b.to(torch::kFloat), norm).t());
  auto same = g.unsqueeze(1).eq(g.unsqueeze(0));  // a retrieved row is right when its group matches
  // a -> b ranks distinct b items: rows of one group (the same text) count
  // once, at their best score, so that repeats do not fill the top k.
  const auto compact = std::get<1>(at::_unique2(g, /*sorted=*/true, /*return_inverse=*/true));
  auto by_group = best_per_group(sim, compact);
  auto own = compact.unsqueeze(1);
  RetrievalResult r;
  const int64_t ks[3] = {1, 5, 10};
  for (int dir = 0; dir < 2; ++dir) {
    auto s = dir == 0 ? by_group : sim.t();
    for (int j = 0; j < 3; ++j) {
      auto top = std::get<1>(s.topk(std::min(ks[j], s.size(1)), 1));
      auto hits = dir == 0 ? top.eq(own).any(1) : same.gather(1, top).any(1);
      (dir == 0 ? r.a_to_b : r.b_to_a)[j] = hits.to(torch::kDouble).mean().item<double>();
      if (j == 0) {
        auto& out = dir == 0 ? r.a_to_b_hits : r.b_to_a_hits;
        auto h = hits.contiguous();
        out.assign(h.data_ptr<bool>(), h.data_ptr<bool>() + n);
      }
    }
  }
  return r;
}

namespace {

// The percentile interval of the means of `per_item` [N] over resamplings of
// its items with replacement (paired differences come in as one column).
Interval percentile_interval(const torch::Tensor& per_item, int64_t resamples, uint64_t seed, double level) {
  TORCH_CHECK(per_item.size(0) >= 1, "bootstrap: no items");
  TORCH_CHECK(resamples >= 10 && level > 0 && level < 1, "bootstrap: needs resamples >= 10 and level in (0, 1)");
  auto g = make_generator(seed);
  const int64_t n = per_item.size(0);
  auto draws = torch::randint(n, {resamples, n}, g, torch::kLong);
  auto means = per_item.index_select(0, draws.reshape(-1)).reshape({resamples, n}).mean(1);
  auto sorted = std::get<0>(means.sort());
  auto at = [&](double q) {
    const auto i = std::clamp<int64_t>(static_cast<int64_t>(std::floor(q * static_cast<double>(resamples - 1) + 0.5)),
                                       0, resamples - 1);
    return sorted[i].item<double>();
  };
  return {at((1 - level) / 2), at(1 - (1 - level) / 2)};
}

torch::Tensor as_tensor(const std::vector<bool>& v) {
  auto t = torch::empty({static_cast<int64_t>(v.size())}, torch::kDouble);
  auto a = t.accessor<double, 1>();
  for (size_t i = 0; i < v.size(); ++i) a[static_cast<int64_t>(i)] = v[i] ? 1.0 : 0.0;
  return t;
}

}  // namespace

Interval bootstrap_accuracy(const std::vector<bool>& correct, int64_t resamples, uint64_t seed, double level) {
  return percentile_interval(as_tensor(correct), resamples, seed, level);
}

Interval bootstrap_difference(const std::vector<bool>& a, const std::vector<bool>& b, int64_t resamples,
                              uint64_t seed, double level) {
  TORCH_CHECK(a.size() == b.size(), "bootstrap_difference: ", a.size(), " and ", b.size(),
              " items; both must be judged on the same items");
  return percentile_interval(as_tensor(a) - as_tensor(b), resamples, seed, level);
}

std::vector<bool> correct_top1(const ClassificationResult& result, const torch::Tensor& targets) {
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == static_cast<int64_t>(result.predictions.size()),
              "correct_top1: ", result.predictions.size(), " predictions for ", targets.sizes(), " targets");
  auto t = targets.to(torch::kLong).contiguous();
  auto ta = t.accessor<int64_t, 1>();
  std::vector<bool> out;
  for (size_t i = 0; i < result.predictions.size(); ++i) out.push_back(result.predictions[i] == ta[static_cast<int64_t>(i)]);
  return out;
}

}  // namespace cwcl
