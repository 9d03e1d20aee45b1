from ev import *
S=np.load('F_0.6_3.0.npy'); np.fill_diagonal(S,-1)
cl=labels[:,None]==labels[None,:]; S=np.where(cl,S,-1)
same=(ref[:,None]==ref[None,:]); np.fill_diagonal(same,False)
# for each item: best sim to a same-ref partner, best sim to non-ref item
bp=np.where(same,S,-1).max(1); bn=np.where(~same,S,-1).max(1)
has=same.any(1)
print('items with partners',has.sum())
print('best partner sim quantiles',np.quantile(bp[has],[0.05,0.1,0.2,0.3,0.5]).round(3))
print('items whose best partner < best non-partner:', (bp[has]<bn[has]).sum())
print('items whose best partner < 0.85:', (bp[has]<0.85).sum())
# "outlier" items: best partner < 0.85 — these are the ones that CC can't attach
