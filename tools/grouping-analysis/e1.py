from ev import *
def lcn(x, bs=0.6, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+1e-2)
Ss=run('lcn', lcn, [0.9,0.85,0.8])
import pickle; pickle.dump(Ss, open('S_lcn.pkl','wb'))
# analyse missed ref pairs: best sim distribution
for lab,(idx,S) in Ss.items():
    r=ref[idx]; same=(r[:,None]==r[None,:]); iu=np.triu_indices(len(idx),1)
    s=S[iu]; sm=same[iu]
    print(lab,'ref pairs',sm.sum(),'sim quantiles among ref pairs', np.quantile(s[sm],[0.01,0.05,0.1,0.25,0.5]).round(3), 'non-ref >0.85:', (s[~sm]>0.85).sum())
